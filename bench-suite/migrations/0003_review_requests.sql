-- Idempotent reviews: the client names each review request with a UUID, and a review retried
-- with the same id (after a time-out, a lost answer, or an error raised after the commit) is
-- recognised instead of being recorded twice.
--
-- Nullable, without a default: adding it rewrites nothing, and the seeded history (which has
-- no request ids) is not in the partial index, so neither the migration nor the seed pays for
-- it. The index is what makes two concurrent attempts of one request record it once: the
-- second insert fails with a unique violation, which `record_review` turns into "already
-- recorded".
ALTER TABLE review_log ADD COLUMN request_id UUID;
CREATE UNIQUE INDEX review_log_user_request ON review_log (user_id, request_id)
    WHERE request_id IS NOT NULL;
