-- The first schema of the vocabulary service: users, words and one review card per
-- (user, word) with its SM-2 scheduling state. Card state: 0 new, 1 learning, 2 review,
-- 3 relearning (a SMALLINT, so that no custom type needs a catalog lookup on connect).
CREATE TABLE users (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE words (
    id          BIGINT PRIMARY KEY,
    lemma       TEXT NOT NULL,
    definition  TEXT NOT NULL,
    difficulty  SMALLINT NOT NULL
);

CREATE TABLE review_cards (
    id               BIGINT PRIMARY KEY,
    user_id          BIGINT NOT NULL REFERENCES users (id),
    word_id          BIGINT NOT NULL REFERENCES words (id),
    card_state       SMALLINT NOT NULL,
    ease             REAL NOT NULL,
    interval_days    INTEGER NOT NULL,
    repetitions      INTEGER NOT NULL,
    due_at           TIMESTAMPTZ NOT NULL,
    last_reviewed_at TIMESTAMPTZ,
    UNIQUE (user_id, word_id)
);

-- Serves a user's due list in (due_at, id) order with keyset pagination.
CREATE INDEX review_cards_user_due ON review_cards (user_id, due_at, id);
