//! Plain-text tables for people: a header row, columns padded to their
//! widest cell (two spaces apart), no colour, the last column unpadded.
//! Scripts use `--json` instead.

/// Renders `rows` under `headers`; every line ends with `\n`.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(width(cell));
            } else {
                widths.push(width(cell));
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            if i < last {
                text.push_str(&" ".repeat(widths[i] - width(cell) + 2));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `text` cut to `max` characters, an ellipsis marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `key  value` lines with the keys aligned.
pub fn pairs(items: &[(&str, String)]) -> String {
    let w = items
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    items
        .iter()
        .map(|(k, v)| format!("{k}{}  {v}\n", " ".repeat(w - k.chars().count())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_their_widest_cell() {
        let rows = vec![
            vec![
                "/web".to_string(),
                "3/3".into(),
                "python3 -m http.server".into(),
            ],
            vec!["/team-a/dbé".to_string(), "0/1".into(), String::new()],
        ];
        assert_eq!(
            render(&["ID", "TASKS", "CMD"], &rows),
            "ID           TASKS  CMD\n\
             /web         3/3    python3 -m http.server\n\
             /team-a/dbé  0/1\n"
        );
        assert_eq!(render(&["ID"], &[]), "ID\n");
    }

    #[test]
    fn long_cells_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ab\ncd", 10), "ab cd");
        assert_eq!(truncate("abcd", 4), "abcd");
    }

    #[test]
    fn pairs_align_their_keys() {
        assert_eq!(
            pairs(&[("id", "/web".into()), ("instances", "3".into())]),
            "id         /web\ninstances  3\n"
        );
    }
}
