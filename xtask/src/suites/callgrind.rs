//! Per-function instruction counts from the Callgrind outputs Gungraun writes for each
//! benchmark (`<GUNGRAUN_HOME>/<package>/<bench>/<group>/<function>.<id>/callgrind.<function>.<id>.out`),
//! so that a report can say *which* functions an instruction regression is in.
//!
//! [`parse`] is pure: it reads the Callgrind format's `positions:`, `events:`, `fl=`/`fi=`/`fe=`,
//! `fn=`, `calls=` and cost lines, with or without name compression (`fn=(12) name`, later
//! `fn=(12)`). A function's *exclusive* count is the `Ir` of its own cost lines; its
//! *inclusive* count adds the `Ir` of the calls it makes (the cost line after each `calls=`).
//! A recursive function's inclusive count includes its recursion, as `callgrind_annotate`'s
//! does.

use std::collections::BTreeMap;
use std::path::Path;

use crate::record::FunctionCost;

/// The functions of one Callgrind output, by name, largest inclusive count first.
pub fn parse(text: &str) -> Vec<FunctionCost> {
    let mut parser = Parser::default();
    for line in text.lines() {
        parser.line(line.trim_end());
    }
    parser.finish()
}

#[derive(Default)]
struct Parser {
    /// Columns before the events on a cost line (`positions: line` is 1, `instr line` 2).
    positions: usize,
    /// Which event column is `Ir`.
    ir_column: usize,
    /// Compressed names seen so far, by id, for `fn=` and `cfn=` (one table, as Callgrind's).
    names: BTreeMap<String, String>,
    current: Option<String>,
    /// The next cost line is a call's inclusive cost.
    in_call: bool,
    /// (exclusive, inclusive) by function.
    costs: BTreeMap<String, (u64, u64)>,
}

impl Parser {
    fn line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("positions:") {
            self.positions = rest.split_whitespace().count().max(1);
        } else if let Some(rest) = line.strip_prefix("events:") {
            self.ir_column = rest.split_whitespace().position(|e| e == "Ir").unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("fn=") {
            let name = self.name(rest);
            self.costs.entry(name.clone()).or_default();
            self.current = Some(name);
        } else if let Some(rest) = line.strip_prefix("cfn=") {
            // Registers a compressed name; the callee's own costs come under its `fn=`.
            self.name(rest);
        } else if line.starts_with("calls=") {
            self.in_call = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '*')) {
            self.cost(line);
        }
    }

    /// The name of `fn=`/`cfn=`'s value, resolving and registering compression ids.
    fn name(&mut self, value: &str) -> String {
        let value = value.trim();
        let Some(rest) = value.strip_prefix('(') else {
            return value.to_owned();
        };
        let Some((id, name)) = rest.split_once(')') else {
            return value.to_owned();
        };
        let name = name.trim();
        if name.is_empty() {
            self.names
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("({id})"))
        } else {
            self.names.insert(id.to_owned(), name.to_owned());
            name.to_owned()
        }
    }

    fn cost(&mut self, line: &str) {
        let ir = line
            .split_whitespace()
            .nth(self.positions.max(1) + self.ir_column)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0);
        let in_call = std::mem::take(&mut self.in_call);
        let Some(function) = &self.current else {
            return;
        };
        let (exclusive, inclusive) = self.costs.entry(function.clone()).or_default();
        *inclusive += ir;
        if !in_call {
            *exclusive += ir;
        }
    }

    fn finish(self) -> Vec<FunctionCost> {
        let mut functions: Vec<FunctionCost> = self
            .costs
            .into_iter()
            .filter(|(_, (_, inclusive))| *inclusive > 0)
            .map(|(name, (exclusive, inclusive))| FunctionCost {
                name,
                exclusive,
                inclusive,
            })
            .collect();
        functions.sort_by(|a, b| b.inclusive.cmp(&a.inclusive).then(a.name.cmp(&b.name)));
        functions
    }
}

/// Every benchmark's functions under a Gungraun home, by metric name
/// (`instructions/<group>/<function>/<id>`). Outputs Gungraun keeps from earlier runs
/// (`*.out.old`, `*.out.base@…`) are not read. Unreadable files are left out: the functions are
/// an explanation, never a measurement.
pub fn read_home(home: &Path) -> BTreeMap<String, Vec<FunctionCost>> {
    let mut found = BTreeMap::new();
    visit(home, &mut found);
    found
}

fn visit(dir: &Path, found: &mut BTreeMap<String, Vec<FunctionCost>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, found);
            continue;
        }
        let Some(name) = metric_of(&path) else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(&path) {
            found.insert(name, parse(&text));
        }
    }
}

/// `instructions/<group>/<function>/<id>` of `…/<group>/<function>.<id>/callgrind.<function>.<id>.out`.
fn metric_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let bench = file.strip_prefix("callgrind.")?.strip_suffix(".out")?;
    let dir = path.parent()?;
    if dir.file_name()?.to_str()? != bench {
        return None;
    }
    let group = dir.parent()?.file_name()?.to_str()?;
    let (function, id) = bench.split_once('.')?;
    Some(format!("instructions/{group}/{function}/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "# callgrind format\nversion: 1\npositions: line\n\
        events: Ir Dr Dw\nsummary: 1100 0 0\n\n\
        ob=/bin/bench\nfl=???\nfn=(1) bench::main\n10 5\ncfn=(2) bench::decode\ncalls=1 0\n\
        11 1000 3 3\n12 5\n\
        fl=src/decode.rs\nfn=(2)\n20 900\n+1 50\ncfn=(3) alloc\ncalls=2 0\n21 50\n\
        fn=(3)\n1 50\n";

    #[test]
    fn exclusive_and_inclusive_counts_per_function_with_compressed_names() {
        let functions = parse(OUTPUT);
        let of = |name: &str| {
            functions
                .iter()
                .find(|f| f.name == name)
                .map(|f| (f.exclusive, f.inclusive))
        };
        assert_eq!(of("bench::main"), Some((10, 1010)));
        assert_eq!(of("bench::decode"), Some((950, 1000)));
        assert_eq!(of("alloc"), Some((50, 50)));
        assert_eq!(functions[0].name, "bench::main", "largest inclusive first");
    }

    #[test]
    fn the_ir_column_is_found_after_the_positions() {
        let text = "positions: instr line\nevents: Dr Ir\nfn=f\n0x10 3 7 40\n";
        let functions = parse(text);
        assert_eq!((functions[0].exclusive, functions[0].inclusive), (40, 40));
    }

    #[test]
    fn a_benchmarks_output_file_names_its_metric() {
        let path = Path::new(
            "home/bench-suite/instructions/query/due_cards_row_decode.page_of_50/\
             callgrind.due_cards_row_decode.page_of_50.out",
        );
        assert_eq!(
            metric_of(path).as_deref(),
            Some("instructions/query/due_cards_row_decode/page_of_50")
        );
        assert_eq!(metric_of(&path.with_extension("out.old")), None);
        assert_eq!(metric_of(Path::new("home/x/callgrind.other.out")), None);
    }
}
