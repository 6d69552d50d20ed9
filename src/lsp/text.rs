//! Positions: the protocol counts UTF-16 code units per line, the compiler bytes.
//!
//! Every position a client sends is clamped, never trusted: a line past the end is the end
//! of the text, a column past the end of its line is the line's end, and a column inside a
//! surrogate pair (or inside a character, in bytes) moves back to the character's start.

use lsp_types::{Position, Range, TextDocumentContentChangeEvent};

/// Byte offsets of line starts.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The protocol position of a byte offset (clamped to the text).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_char(text, offset.min(text.len()));
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let col: usize = text[self.starts[line]..offset]
            .chars()
            .map(char::len_utf16)
            .sum();
        Position::new(line as u32, col as u32)
    }

    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range::new(self.position(text, start), self.position(text, end))
    }

    /// The byte offset of a protocol position, clamped as the module says.
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return text.len();
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map_or(text.len(), |&next| next - 1);
        let line = text[start..end]
            .strip_suffix('\r')
            .unwrap_or(&text[start..end]);
        let mut units = 0usize;
        for (i, c) in line.char_indices() {
            units += c.len_utf16();
            if units > pos.character as usize {
                return start + i;
            }
        }
        start + line.len()
    }
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Applies one change from `didChange` (a range edit, or the whole text when it has none).
pub fn apply_change(
    text: &mut String,
    index: &mut LineIndex,
    change: TextDocumentContentChangeEvent,
) {
    match change.range {
        None => *text = change.text,
        Some(r) => {
            let start = index.offset(text, r.start);
            let end = index.offset(text, r.end).max(start);
            text.replace_range(start..end, &change.text);
        }
    }
    *index = LineIndex::new(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position::new(line, character)
    }

    #[test]
    fn utf16_columns_count_surrogate_pairs_twice() {
        // `é` is 2 bytes and 1 unit; `𝄞` is 4 bytes and 2 units.
        let text = "aé𝄞b\nx";
        let ix = LineIndex::new(text);
        assert_eq!(ix.position(text, 0), pos(0, 0));
        assert_eq!(ix.position(text, 1), pos(0, 1));
        assert_eq!(ix.position(text, 3), pos(0, 2));
        assert_eq!(ix.position(text, 7), pos(0, 4));
        assert_eq!(ix.position(text, 9), pos(1, 0));
        for off in [0, 1, 3, 7, 8, 9, 10] {
            assert_eq!(
                ix.offset(text, ix.position(text, off)),
                off,
                "round trip of {off}"
            );
        }
    }

    #[test]
    fn bad_positions_are_clamped() {
        let text = "a𝄞\r\nbc";
        let ix = LineIndex::new(text);
        // Inside the surrogate pair: back to the character's start.
        assert_eq!(ix.offset(text, pos(0, 2)), 1);
        // Past the line's end: the end, before `\r\n`.
        assert_eq!(ix.offset(text, pos(0, 99)), 5);
        // Past the last line: the end of the text.
        assert_eq!(ix.offset(text, pos(7, 3)), text.len());
        // An offset inside a character maps to its start.
        assert_eq!(ix.position(text, 2), pos(0, 1));
        assert_eq!(ix.position(text, 999), pos(1, 2));
    }

    #[test]
    fn changes_apply_in_order_and_reversed_ranges_insert() {
        let mut text = String::from("ab\ncd");
        let mut ix = LineIndex::new(&text);
        let edit = |l0, c0, l1, c1, t: &str| TextDocumentContentChangeEvent {
            range: Some(Range::new(pos(l0, c0), pos(l1, c1))),
            range_length: None,
            text: t.to_string(),
        };
        apply_change(&mut text, &mut ix, edit(0, 1, 1, 1, "X"));
        assert_eq!(text, "aXd");
        apply_change(&mut text, &mut ix, edit(0, 3, 0, 1, "!"));
        assert_eq!(text, "aXd!");
    }
}
