//! Plain-text tables for the CLI.

/// A column of a table: its header, and how an item's cell is made.
pub type Column<'a, T> = (&'a str, &'a dyn Fn(&T) -> String);

/// Renders one row per item under the columns' headers (see [`render`]).
pub fn columns<T>(items: &[T], max_width: usize, columns: &[Column<'_, T>]) -> String {
    let header: Vec<&str> = columns.iter().map(|(header, _)| *header).collect();
    let cells: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|(_, cell)| cell(item)).collect())
        .collect();
    render(&header, &cells, max_width)
}

/// Renders rows under a header with columns padded to their widest cell. Cells are cut to
/// `max_width` characters so one long client name cannot wreck the layout.
pub fn render(header: &[&str], rows: &[Vec<String>], max_width: usize) -> String {
    let cut = |cell: &str| -> String {
        if cell.chars().count() > max_width {
            let mut s: String = cell.chars().take(max_width.saturating_sub(1)).collect();
            s.push('…');
            s
        } else {
            // Control characters from clients must not move the terminal's cursor.
            cell.chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect()
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cut(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}", w = *w))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn pads_and_cuts() {
        let out = render(
            &["A", "B"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["a\u{1b}[2J".into(), "long-cell".into()],
            ],
            5,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "A      B");
        assert_eq!(lines[1], "xyz    1");
        assert_eq!(lines[2], "a?[2J  long…");
    }
}
