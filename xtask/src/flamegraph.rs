//! Differential flame graphs of one instruction benchmark, base against head, for
//! `report.html`: a self-contained `<svg>` (no scripts, fonts or links) in which each frame is
//! a path of calls from the benchmark's entry, as wide as head's instructions on that path,
//! red where the path grew, blue where it shrank, near-white where it did not move (as Brendan
//! Gregg's differential flame graphs).
//!
//! **An approximation.** A Callgrind profile holds call *edges* (what `g` cost when `f` called
//! it, summed over every call), not whole stacks, so a path's cost is estimated as gprof and
//! the callgrind-based flame graphs do: a child's width is its edge's inclusive cost scaled by
//! the share its parent frame has of the parent function's total (`edge × parent frame /
//! parent's inclusive`, at most the edge). That assumes a function costs the same per call
//! whoever calls it; a function that is cheap from one caller and dear from another is drawn
//! at its average under both. The parent's total is its inclusive cost without its calls of
//! itself (which Callgrind's inclusive count adds again), so a recursive function's callees
//! are not thinned by its recursion. Only the record's kept edges are known (at least
//! [`crate::record::MIN_CALL_SHARE`] of the benchmark); what a frame's children leave of its
//! width is its own instructions, its thin calls and the calls cut below.
//!
//! The tree ([`differential_tree`]) is pure: rooted at head's entry (the function with the
//! largest inclusive cost that no kept edge calls), a frame's children are its callees in both
//! records, a callee already on the path (recursion) is not followed, nor is anything deeper
//! than [`TreeLimits::max_depth`] or narrower in head than [`TreeLimits::min_width_share`] of
//! the root. Widths come from head; a callee narrower in head than that but wide enough in
//! base (gone, or shrunk away) is not drawn but listed in its parent's tooltip, and the
//! header says how many there are. The rendering ([`differential_svg`]) draws at most
//! [`MAX_FRAMES`] frames, the widest (so every drawn frame's parent is drawn), which keeps one
//! graph under about 100 KB whatever the benchmark.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::html::escape_html;
use crate::record::{CallEdge, FunctionCost};

/// At most this many frames are drawn in one graph.
pub const MAX_FRAMES: usize = 300;

/// The graph's width in SVG pixels.
const WIDTH: f64 = 1200.0;
/// One frame's height.
const ROW: f64 = 16.0;
/// The header line's height above the frames.
const HEADER: f64 = 22.0;
/// A monospace character's width at the graph's 11 px font, for fitting labels in frames.
const CHAR_WIDTH: f64 = 6.6;
/// How many of the not-drawn callees a tooltip lists.
const TOOLTIP_HIDDEN: usize = 5;

/// Where a tree stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeLimits {
    /// The deepest frame, the root being depth 0.
    pub max_depth: usize,
    /// A frame narrower in head than this share of the root is not followed (0.25%: 3 of the
    /// graph's 1200 pixels, too narrow to point at).
    pub min_width_share: f64,
}

impl Default for TreeLimits {
    fn default() -> Self {
        TreeLimits {
            max_depth: 40,
            min_width_share: 0.0025,
        }
    }
}

/// One record's call graph of one benchmark: its functions' totals and its kept edges.
#[derive(Debug, Default)]
pub struct CallGraph<'a> {
    /// Each function's inclusive cost without its calls of itself.
    totals: BTreeMap<&'a str, u64>,
    /// The kept edges by caller, then callee (calls of itself left out).
    callees: BTreeMap<&'a str, BTreeMap<&'a str, u64>>,
    /// The functions some kept edge calls.
    called: BTreeSet<&'a str>,
}

impl<'a> CallGraph<'a> {
    /// The graph of a record's functions and call edges of one benchmark.
    pub fn new(functions: &'a [FunctionCost], calls: &'a [CallEdge]) -> Self {
        let mut graph = CallGraph::default();
        for function in functions {
            graph.totals.insert(&function.name, function.inclusive);
        }
        for edge in calls {
            if edge.caller == edge.callee {
                if let Some(total) = graph.totals.get_mut(edge.caller.as_str()) {
                    *total = total.saturating_sub(edge.inclusive);
                }
                continue;
            }
            *graph
                .callees
                .entry(&edge.caller)
                .or_default()
                .entry(&edge.callee)
                .or_default() += edge.inclusive;
            graph.called.insert(&edge.callee);
        }
        graph
    }

    /// The entry: the function with the largest total that no kept edge calls (by name on a
    /// tie), with its total.
    fn root(&self) -> Option<(&'a str, u64)> {
        self.totals
            .iter()
            .filter(|(name, total)| **total > 0 && !self.called.contains(*name))
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(name, total)| (*name, *total))
    }

    /// The width of `callee` under a frame of `caller` that is `caller_width` wide.
    fn child_width(&self, caller: &str, callee: &str, caller_width: f64) -> f64 {
        let Some(&edge) = self.callees.get(caller).and_then(|c| c.get(callee)) else {
            return 0.0;
        };
        let total = self.totals.get(caller).copied().unwrap_or(0);
        if total == 0 {
            return 0.0;
        }
        edge as f64 * (caller_width / total as f64).min(1.0)
    }
}

/// One frame: a path of calls from the root, its estimated instructions in base and head.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub name: String,
    pub base: f64,
    pub head: f64,
    /// The callees drawn above it, by name.
    pub children: Vec<Frame>,
    /// Callees narrower in head than the drawn minimum but at least that wide in base, widest
    /// in base first: not drawn, listed in the tooltip.
    pub hidden: Vec<HiddenCallee>,
}

/// A callee that shrank below what is drawn (or is gone from head).
#[derive(Debug, Clone, PartialEq)]
pub struct HiddenCallee {
    pub name: String,
    pub base: f64,
    pub head: f64,
}

/// The tree of one record (its base widths all 0).
pub fn flame_tree(graph: &CallGraph<'_>, limits: &TreeLimits) -> Option<Frame> {
    differential_tree(&CallGraph::default(), graph, limits)
}

/// The tree of head's paths from head's entry, each with its width in base and head; `None`
/// when head has no entry (no functions).
pub fn differential_tree(
    base: &CallGraph<'_>,
    head: &CallGraph<'_>,
    limits: &TreeLimits,
) -> Option<Frame> {
    let (root, head_width) = head.root()?;
    let base_width = base.totals.get(root).copied().unwrap_or(0) as f64;
    let walk = Walk {
        base,
        head,
        head_least: head_width as f64 * limits.min_width_share,
        base_least: base_width * limits.min_width_share,
        max_depth: limits.max_depth,
    };
    Some(walk.frame(root, base_width, head_width as f64, &mut Vec::new()))
}

/// The walk of both graphs along head's paths.
struct Walk<'g, 'a> {
    base: &'g CallGraph<'a>,
    head: &'g CallGraph<'a>,
    /// The narrowest frame followed in head, and the narrowest hidden callee listed in base.
    head_least: f64,
    base_least: f64,
    max_depth: usize,
}

impl<'a> Walk<'_, 'a> {
    fn frame(&self, name: &'a str, base: f64, head: f64, path: &mut Vec<&'a str>) -> Frame {
        let mut frame = Frame {
            name: name.to_owned(),
            base,
            head,
            children: Vec::new(),
            hidden: Vec::new(),
        };
        if path.len() >= self.max_depth {
            return frame;
        }
        path.push(name);
        let callees: BTreeSet<&'a str> = [self.base, self.head]
            .iter()
            .filter_map(|graph| graph.callees.get(name))
            .flat_map(|callees| callees.keys().copied())
            .filter(|callee| !path.contains(callee))
            .collect();
        for callee in callees {
            let base_width = self.base.child_width(name, callee, base);
            let head_width = self.head.child_width(name, callee, head);
            if head_width > 0.0 && head_width >= self.head_least {
                let child = self.frame(callee, base_width, head_width, path);
                frame.children.push(child);
            } else if base_width > 0.0 && base_width >= self.base_least {
                frame.hidden.push(HiddenCallee {
                    name: callee.to_owned(),
                    base: base_width,
                    head: head_width,
                });
            }
        }
        path.pop();
        frame
            .hidden
            .sort_by(|a, b| b.base.total_cmp(&a.base).then_with(|| a.name.cmp(&b.name)));
        frame
    }
}

/// The differential flame graph of one benchmark as an `<svg>` element, or `None` when head
/// has no entry. `title` names the benchmark in the header.
pub fn differential_svg(
    title: &str,
    base: &CallGraph<'_>,
    head: &CallGraph<'_>,
    limits: &TreeLimits,
) -> Option<String> {
    let root = differential_tree(base, head, limits)?;
    let laid_out = lay_out(&root);
    let drawn = widest(&laid_out, MAX_FRAMES);
    let rows = drawn.iter().map(|&i| laid_out[i].depth).max().unwrap_or(0) + 1;
    let height = HEADER + rows as f64 * ROW + 2.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"monospace\" font-size=\"11\" \
         class=\"flame\">"
    );
    let _ = writeln!(
        svg,
        "<text x=\"2\" y=\"15\">{}</text>",
        escape_html(&header(title, &root, &laid_out, &drawn))
    );
    for &index in &drawn {
        push_frame(&mut svg, &laid_out[index], root.head, rows, limits);
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

/// A frame with where it is drawn: its depth and its left edge in head's instructions.
struct Placed<'t> {
    frame: &'t Frame,
    depth: usize,
    left: f64,
}

/// Every frame of the tree, parents before children, children left to right by name.
fn lay_out(root: &Frame) -> Vec<Placed<'_>> {
    let mut placed = Vec::new();
    let mut stack = vec![(root, 0, 0.0)];
    while let Some((frame, depth, left)) = stack.pop() {
        placed.push(Placed { frame, depth, left });
        let mut child_left = left;
        let mut children = Vec::new();
        for child in &frame.children {
            children.push((child, depth + 1, child_left));
            child_left += child.head;
        }
        stack.extend(children.into_iter().rev());
    }
    placed
}

/// The indexes of the `most` widest frames in head, in drawing order. A child is never wider
/// than its parent and is deeper, so with ties broken by depth every frame kept has its parent
/// kept: the graph loses only its thinnest tips.
fn widest(placed: &[Placed<'_>], most: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..placed.len()).collect();
    order.sort_by(|&a, &b| {
        (placed[b].frame.head.total_cmp(&placed[a].frame.head))
            .then(placed[a].depth.cmp(&placed[b].depth))
            .then(a.cmp(&b))
    });
    order.truncate(most);
    order.sort_unstable();
    order
}

/// The header line: the benchmark, its entry's instructions, how many frames are drawn, and
/// how many callees the drawn frames' tooltips list as not drawn.
fn header(title: &str, root: &Frame, placed: &[Placed<'_>], drawn: &[usize]) -> String {
    let hidden: usize = drawn.iter().map(|&i| placed[i].frame.hidden.len()).sum();
    let mut line = format!(
        "{title} from {}: base {} Ir, head {} Ir ({}); {} of {} frames drawn",
        root.name,
        grouped(root.base),
        grouped(root.head),
        change(root.base, root.head),
        drawn.len(),
        placed.len()
    );
    if hidden > 0 {
        let _ = write!(
            line,
            "; {hidden} callee(s) shrunk below drawing, in tooltips"
        );
    }
    truncated(&line, (WIDTH / CHAR_WIDTH) as usize - 1)
}

/// One frame: a group with its tooltip, its rectangle and, when it fits, its label.
fn push_frame(
    svg: &mut String,
    placed: &Placed<'_>,
    root_width: f64,
    rows: usize,
    limits: &TreeLimits,
) {
    let frame = placed.frame;
    let scale = WIDTH / root_width.max(1.0);
    let (x, width) = (placed.left * scale, frame.head * scale);
    let y = HEADER + (rows - 1 - placed.depth) as f64 * ROW;
    let _ = write!(
        svg,
        "<g><title>{}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" \
         height=\"{:.1}\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\"/>",
        escape_html(&tooltip(frame, limits)),
        ROW - 1.0,
        fill(frame.base, frame.head)
    );
    let fits = ((width - 4.0) / CHAR_WIDTH).floor().max(0.0) as usize;
    if fits >= 5 {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 2.0,
            y + ROW - 4.5,
            escape_html(&truncated(&frame.name, fits))
        );
    }
    svg.push_str("</g>\n");
}

/// A frame's tooltip: its name, base, head and change, and its hidden callees.
fn tooltip(frame: &Frame, limits: &TreeLimits) -> String {
    let mut text = format!(
        "{}\nbase: {} Ir\nhead: {} Ir\nchange: {}",
        frame.name,
        grouped(frame.base),
        grouped(frame.head),
        change(frame.base, frame.head)
    );
    if !frame.hidden.is_empty() {
        let _ = write!(
            text,
            "\nnarrower in head than {}% of the graph, not drawn:",
            limits.min_width_share * 100.0
        );
        for callee in frame.hidden.iter().take(TOOLTIP_HIDDEN) {
            let _ = write!(
                text,
                "\n  {}: base {}, head {}",
                callee.name,
                grouped(callee.base),
                grouped(callee.head)
            );
        }
        if frame.hidden.len() > TOOLTIP_HIDDEN {
            let _ = write!(text, "\n  and {} more", frame.hidden.len() - TOOLTIP_HIDDEN);
        }
    }
    text
}

/// The fill of a frame that is `base` wide in base and `head` in head: red grew, blue shrank,
/// near-white unchanged. The colour's intensity grows with the logarithm of the relative
/// change: 0.1% is barely tinted, 1% faint, 10% strong, 50% and more (and a new path) full.
pub fn fill(base: f64, head: f64) -> String {
    const LIGHT: f64 = 248.0;
    const DEEPEST: f64 = 190.0;
    let relative = if base > 0.0 {
        (head - base) / base
    } else if head > 0.0 {
        1.0
    } else {
        0.0
    };
    let intensity = ((1.0 + relative.abs() / 0.01).ln() / 51f64.ln()).min(1.0);
    let light = LIGHT as u8;
    let tinted = (LIGHT - DEEPEST * intensity).round() as u8;
    let (red, green, blue) = if relative > 0.0 {
        (light, tinted, tinted)
    } else if relative < 0.0 {
        (tinted, tinted, light)
    } else {
        (light, light, light)
    };
    format!("rgb({red},{green},{blue})")
}

/// `head - base` with its sign and relative to base (`new` when base is 0).
fn change(base: f64, head: f64) -> String {
    let difference = grouped_signed(head - base);
    if base > 0.0 {
        format!("{difference}, {:+.2}%", (head - base) / base * 100.0)
    } else if head > 0.0 {
        format!("{difference}, new")
    } else {
        difference
    }
}

/// A count rounded to a whole instruction, its thousands grouped with commas.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value.round() < 0.0 {
        out.insert(0, '-');
    }
    out
}

fn grouped_signed(value: f64) -> String {
    if value.round() > 0.0 {
        format!("+{}", grouped(value))
    } else {
        grouped(value)
    }
}

/// `text` cut to at most `chars` characters, ending in `..` when cut.
fn truncated(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(chars.saturating_sub(2)).collect();
    cut.push_str("..");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn functions(costs: &[(&str, u64, u64)]) -> Vec<FunctionCost> {
        costs
            .iter()
            .map(|&(name, exclusive, inclusive)| FunctionCost {
                name: name.to_owned(),
                exclusive,
                inclusive,
            })
            .collect()
    }

    fn edges(calls: &[(&str, &str, u64)]) -> Vec<CallEdge> {
        calls
            .iter()
            .map(|&(caller, callee, inclusive)| CallEdge {
                caller: caller.to_owned(),
                callee: callee.to_owned(),
                inclusive,
            })
            .collect()
    }

    fn child<'f>(frame: &'f Frame, name: &str) -> &'f Frame {
        frame
            .children
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} under {}: {frame:#?}", frame.name))
    }

    /// `a` calls itself (its inclusive 800 counts that recursion: its total is 600) and `b`;
    /// `b` calls `a` back; `tiny` is 0.1% of `main`.
    fn recursive() -> (Vec<FunctionCost>, Vec<CallEdge>) {
        (
            functions(&[
                ("main", 99, 1000),
                ("a", 200, 800),
                ("b", 600, 700),
                ("tiny", 1, 1),
            ]),
            edges(&[
                ("main", "a", 600),
                ("main", "b", 300),
                ("main", "tiny", 1),
                ("a", "a", 200),
                ("a", "b", 400),
                ("b", "a", 100),
            ]),
        )
    }

    #[test]
    fn a_childs_width_is_its_edge_scaled_by_its_parents_share_and_recursion_is_cut() {
        let (functions, calls) = recursive();
        let graph = CallGraph::new(&functions, &calls);
        let root = flame_tree(&graph, &TreeLimits::default()).unwrap();
        assert_eq!((root.name.as_str(), root.head), ("main", 1000.0));
        let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "tiny is under 0.25% of the root");
        let a = child(&root, "a");
        assert_eq!(a.head, 600.0);
        // a's total is 600 without its call of itself: all of a, so all of its edge to b.
        let b_under_a = child(a, "b");
        assert_eq!(b_under_a.head, 400.0);
        assert!(b_under_a.children.is_empty(), "b's call of a is recursion");
        assert!(
            !a.children.iter().any(|c| c.name == "a"),
            "a's call of itself"
        );
        // b under main has 300 of b's 700: 3/7 of its edge to a.
        let a_under_b = child(child(&root, "b"), "a");
        assert!(
            (a_under_b.head - 100.0 * 3.0 / 7.0).abs() < 1e-9,
            "{a_under_b:?}"
        );
        assert!(a_under_b.children.is_empty(), "a's call of b is recursion");
        assert_eq!(root.base, 0.0, "one record has no base");
    }

    #[test]
    fn frames_narrower_than_the_minimum_or_deeper_than_the_limit_are_not_followed() {
        let (functions, calls) = recursive();
        let graph = CallGraph::new(&functions, &calls);
        let wide = TreeLimits {
            max_depth: 40,
            min_width_share: 0.05,
        };
        let root = flame_tree(&graph, &wide).unwrap();
        assert!(child(&root, "b").children.is_empty(), "43 < 5% of 1000");
        assert_eq!(child(child(&root, "a"), "b").head, 400.0);
        let shallow = TreeLimits {
            max_depth: 1,
            min_width_share: 0.0,
        };
        let root = flame_tree(&graph, &shallow).unwrap();
        assert_eq!(root.children.len(), 3, "tiny too, with no minimum");
        assert!(root.children.iter().all(|c| c.children.is_empty()));
    }

    /// Base: `main` calls `parse` (4,000) and `render` (5,000, of which `fmt<&str>` 2,000 and
    /// `legacy` 500). Head: `parse` grew to 6,000, `render` shrank to 4,000 (`fmt<&str>` to
    /// 1,000, `legacy` gone); `alloc` under both is unchanged.
    fn base_and_head() -> [(Vec<FunctionCost>, Vec<CallEdge>); 2] {
        let base = (
            functions(&[
                ("main", 1000, 10_000),
                ("parse", 3000, 4000),
                ("render", 1500, 5000),
                ("alloc", 2000, 2000),
                ("fmt<&str>", 2000, 2000),
                ("legacy", 500, 500),
            ]),
            edges(&[
                ("main", "parse", 4000),
                ("main", "render", 5000),
                ("parse", "alloc", 1000),
                ("render", "alloc", 1000),
                ("render", "fmt<&str>", 2000),
                ("render", "legacy", 500),
            ]),
        );
        let head = (
            functions(&[
                ("main", 1000, 11_000),
                ("parse", 5000, 6000),
                ("render", 2000, 4000),
                ("alloc", 2000, 2000),
                ("fmt<&str>", 1000, 1000),
            ]),
            edges(&[
                ("main", "parse", 6000),
                ("main", "render", 4000),
                ("parse", "alloc", 1000),
                ("render", "alloc", 1000),
                ("render", "fmt<&str>", 1000),
            ]),
        );
        [base, head]
    }

    fn svg() -> String {
        let [base, head] = base_and_head();
        differential_svg(
            "instructions/render/page",
            &CallGraph::new(&base.0, &base.1),
            &CallGraph::new(&head.0, &head.1),
            &TreeLimits::default(),
        )
        .unwrap()
    }

    /// The fill of the frame whose tooltip starts with `name`, as (red, green, blue).
    fn fill_of(svg: &str, name: &str) -> (u8, u8, u8) {
        let start = svg
            .find(&format!("<g><title>{name}\n"))
            .unwrap_or_else(|| panic!("no frame {name} in {svg}"));
        let fill = &svg[start..][svg[start..].find("fill=\"rgb(").unwrap() + 10..];
        let channels: Vec<u8> = fill[..fill.find(')').unwrap()]
            .split(',')
            .map(|c| c.parse().unwrap())
            .collect();
        (channels[0], channels[1], channels[2])
    }

    /// Every element closes, in order (`<x/>` closes itself).
    fn assert_balanced(xml: &str) {
        let mut open: Vec<&str> = Vec::new();
        let mut rest = xml;
        while let Some(start) = rest.find('<') {
            let end = start + rest[start..].find('>').expect("an unclosed tag");
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "a `<` inside a tag: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap());
            }
            rest = &rest[end + 1..];
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
    }

    #[test]
    fn grown_frames_are_red_shrunk_ones_blue_unchanged_ones_white() {
        let svg = svg();
        let (red, green, blue) = fill_of(&svg, "parse");
        assert!(
            red > green && green == blue,
            "parse grew 50%: {red},{green},{blue}"
        );
        assert_eq!((red, green), (248, 58), "50% is the deepest red");
        let (red, green, blue) = fill_of(&svg, "render");
        assert!(
            blue > red && red == green,
            "render shrank: {red},{green},{blue}"
        );
        assert_eq!(fill_of(&svg, "alloc"), (248, 248, 248));
        let (red, green, _) = fill_of(&svg, "main");
        assert!(
            red > green && green > 58,
            "main grew 10%, less deep: {green}"
        );
    }

    #[test]
    fn the_svg_escapes_names_and_its_tags_balance() {
        let svg = svg();
        assert!(svg.starts_with("<svg "));
        assert_balanced(&svg);
        assert!(svg.contains("fmt&lt;&amp;str&gt;"), "{svg}");
        assert!(!svg.contains("fmt<&str>"), "a raw name");
        assert_eq!(
            svg.matches("<rect").count(),
            6,
            "main, parse, render, 2 alloc, fmt"
        );
        assert_eq!(svg.matches("<title>").count(), 6);
        assert!(
            svg.contains("<title>render\nbase: 5,000 Ir\nhead: 4,000 Ir\nchange: -1,000, -20.00%"),
            "{svg}"
        );
        assert!(
            svg.contains("legacy: base 500, head 0"),
            "the gone callee: {svg}"
        );
        for outside in ["<script", "href", "url(", "@import", "<image"] {
            assert!(!svg.contains(outside), "{outside} in {svg}");
        }
    }

    #[test]
    fn at_most_max_frames_are_drawn_the_widest_with_their_parents() {
        // A root calling 500 leaves of different widths: only the widest are drawn.
        let leaves: Vec<String> = (0..500).map(|i| format!("leaf_{i:03}")).collect();
        let mut costs = vec![("main", 0, 500 * 501 / 2)];
        let mut calls = Vec::new();
        for (i, leaf) in leaves.iter().enumerate() {
            costs.push((leaf.as_str(), i as u64 + 1, i as u64 + 1));
            calls.push(("main", leaf.as_str(), i as u64 + 1));
        }
        let (functions, calls) = (functions(&costs), edges(&calls));
        let graph = CallGraph::new(&functions, &calls);
        let limits = TreeLimits {
            max_depth: 40,
            min_width_share: 0.0,
        };
        let svg = differential_svg("wide", &CallGraph::default(), &graph, &limits).unwrap();
        assert_eq!(svg.matches("<rect").count(), MAX_FRAMES);
        assert!(svg.contains("<title>main\n"));
        assert!(svg.contains("<title>leaf_499\n"), "the widest leaf");
        assert!(!svg.contains("<title>leaf_000\n"), "the thinnest leaf");
        assert!(svg.contains("300 of 501 frames drawn"), "{}", &svg[..400]);
        assert_balanced(&svg);
    }

    #[test]
    fn svg_snapshot() {
        insta::assert_snapshot!(svg());
    }
}
