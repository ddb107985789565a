//! `terraform fmt` layout for HCL: two spaces of indentation per open
//! bracket line and the `=` of consecutive one-line attributes aligned.
//!
//! These are the rules of hclwrite's formatter (`formatIndent`,
//! `formatCells`), which `terraform fmt` runs: a line whose brackets open
//! more than they close indents what follows by one level; a line that
//! starts with a closing bracket returns to its opener's level; an
//! attribute whose value ends on its own line belongs to a chain of such
//! lines, broken by anything else (a blank line, a comment, a block), and
//! a chain's `=` signs line up one space after its longest name. Heredoc
//! bodies and block comments are left as written. Only whitespace changes.
//!
//! No terraform binary can be installed where geomesh is built, so the
//! renderer writes through [`format`] and the tests hold every hand-written
//! `.tf` file to it. Trailing comments are not aligned (hclwrite aligns
//! those too): none of our files has one, and [`format`] refuses them.

/// Why text could not be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A quoted string or interpolation not closed on its line.
    #[error("line {0}: string not closed on its line")]
    OpenString(usize),
    /// More closing than opening brackets, or brackets left open at the end.
    #[error("line {0}: unbalanced brackets")]
    Unbalanced(usize),
    /// A comment after code on the same line.
    #[error("line {0}: a comment after code (put it on its own line)")]
    TrailingComment(usize),
    /// A heredoc or block comment without its end.
    #[error("line {0}: heredoc or block comment never closed")]
    Unclosed(usize),
}

/// One line as the layout rules see it.
struct Line<'a> {
    /// Left exactly as written (heredoc bodies, block comments).
    verbatim: Option<&'a str>,
    /// The line without surrounding whitespace.
    text: &'a str,
    /// Net brackets opened (negative: closed) outside strings.
    net: i32,
    /// Byte offset in `text` of the `=` that makes this a one-line attribute.
    assign: Option<usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Nest {
    /// Inside a quoted string.
    Str,
    /// Inside `${ … }` / `%{ … }` of a string, with its own `{` depth.
    Interp(u32),
}

/// What spans lines: a heredoc (its closing marker) or a block comment.
enum Open {
    Heredoc(String),
    Comment,
}

/// Lays `src` out as `terraform fmt` would (whitespace only).
pub fn format(src: &str) -> Result<String, FormatError> {
    let lines = scan(src)?;
    let indents = indents(&lines)?;
    let mut out = String::with_capacity(src.len() + 64);
    let mut i = 0;
    while i < lines.len() {
        // A chain: consecutive one-line attributes, aligned together.
        let end = (i..lines.len())
            .find(|&j| lines[j].assign.is_none() || lines[j].verbatim.is_some())
            .unwrap_or(lines.len());
        if end > i {
            let width = (i..end)
                .map(|j| indents[j] + lead(&lines[j]).chars().count())
                .max()
                .unwrap_or(0);
            for j in i..end {
                let l = &lines[j];
                let name = lead(l);
                let eq = l.assign.unwrap_or(0);
                let pad = width - indents[j] - name.chars().count() + 1;
                out.push_str(&" ".repeat(indents[j]));
                out.push_str(name);
                out.push_str(&" ".repeat(pad));
                out.push_str("= ");
                out.push_str(l.text[eq + 1..].trim_start());
                out.push('\n');
            }
            i = end;
            continue;
        }
        let l = &lines[i];
        match l.verbatim {
            Some(v) => out.push_str(v),
            None if l.text.is_empty() => {}
            None => {
                out.push_str(&" ".repeat(indents[i]));
                out.push_str(l.text);
            }
        }
        out.push('\n');
        i += 1;
    }
    Ok(out)
}

fn lead<'a>(l: &Line<'a>) -> &'a str {
    l.assign.map_or(l.text, |eq| l.text[..eq].trim_end())
}

/// hclwrite's indentation: a stack of the brackets each opening line left
/// open; a line that starts with a closer pops what it closes first.
fn indents(lines: &[Line<'_>]) -> Result<Vec<usize>, FormatError> {
    let mut stack: Vec<i32> = Vec::new();
    let mut out = Vec::with_capacity(lines.len());
    for (n, l) in lines.iter().enumerate() {
        if l.verbatim.is_some() {
            out.push(0);
            continue;
        }
        let mut net = l.net;
        if net > 0 {
            out.push(2 * stack.len());
            stack.push(net);
            continue;
        }
        while net < 0 {
            let top = stack.last_mut().ok_or(FormatError::Unbalanced(n + 1))?;
            if *top <= -net {
                net += *top;
                stack.pop();
            } else {
                *top += net;
                net = 0;
            }
        }
        out.push(2 * stack.len());
    }
    if !stack.is_empty() {
        return Err(FormatError::Unbalanced(lines.len()));
    }
    Ok(out)
}

fn scan(src: &str) -> Result<Vec<Line<'_>>, FormatError> {
    let mut lines = Vec::new();
    let mut open: Option<Open> = None;
    for (n, raw) in src.lines().enumerate() {
        let lineno = n + 1;
        let text = raw.trim();
        match &open {
            Some(Open::Heredoc(marker)) => {
                if text == marker {
                    open = None;
                }
                lines.push(verbatim(raw));
                continue;
            }
            Some(Open::Comment) => {
                if text.contains("*/") {
                    open = None;
                }
                lines.push(verbatim(raw));
                continue;
            }
            None => {}
        }
        let (line, opened) = scan_line(text, lineno)?;
        open = opened;
        lines.push(line);
    }
    if open.is_some() {
        return Err(FormatError::Unclosed(lines.len()));
    }
    Ok(lines)
}

fn verbatim(raw: &str) -> Line<'_> {
    Line {
        verbatim: Some(raw),
        text: raw,
        net: 0,
        assign: None,
    }
}

fn scan_line(text: &str, lineno: usize) -> Result<(Line<'_>, Option<Open>), FormatError> {
    let b = text.as_bytes();
    let mut nest: Vec<Nest> = Vec::new();
    let mut net = 0i32;
    // (offset of the first `=`, brackets opened before it)
    let mut first_eq: Option<(usize, i32)> = None;
    let mut opened = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match nest.last().copied() {
            Some(Nest::Str) => match c {
                b'\\' => i += 1,
                b'"' => {
                    nest.pop();
                }
                b'$' | b'%' if next == Some(c) => i += 1,
                b'$' | b'%' if next == Some(b'{') => {
                    nest.push(Nest::Interp(0));
                    i += 1;
                }
                _ => {}
            },
            top => {
                let in_interp = matches!(top, Some(Nest::Interp(_)));
                match c {
                    b'"' => nest.push(Nest::Str),
                    b'#' => return comment(text, i, net, lineno, opened),
                    b'/' if next == Some(b'/') => return comment(text, i, net, lineno, opened),
                    b'/' if next == Some(b'*') => match text[i + 2..].find("*/") {
                        Some(end) => i += end + 3,
                        None => {
                            opened = Some(Open::Comment);
                            break;
                        }
                    },
                    b'<' if next == Some(b'<') && !in_interp => {
                        let marker = text[i + 2..].trim_start_matches('-');
                        if !marker.is_empty()
                            && marker
                                .bytes()
                                .all(|m| m.is_ascii_alphanumeric() || m == b'_')
                        {
                            opened = Some(Open::Heredoc(marker.to_string()));
                            break;
                        }
                        i += 1;
                    }
                    b'{' | b'[' | b'(' => match nest.last_mut() {
                        Some(Nest::Interp(d)) => *d += u32::from(c == b'{'),
                        _ => net += 1,
                    },
                    b'}' | b']' | b')' => match nest.last_mut() {
                        Some(Nest::Interp(0)) if c == b'}' => {
                            nest.pop();
                        }
                        Some(Nest::Interp(d)) => *d -= u32::from(c == b'}'),
                        _ => net -= 1,
                    },
                    b'=' if !in_interp && first_eq.is_none() && i > 0 => {
                        let prev = b[i - 1];
                        let compound = matches!(prev, b'=' | b'!' | b'<' | b'>')
                            || matches!(next, Some(b'=') | Some(b'>'));
                        if !compound {
                            first_eq = Some((i, net));
                        } else if next == Some(b'=') {
                            i += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
        i += 1;
    }
    if !nest.is_empty() {
        return Err(FormatError::OpenString(lineno));
    }
    // An attribute cell only when the value closes every bracket it opens.
    let assign = first_eq.and_then(|(at, before)| (net == before).then_some(at));
    Ok((
        Line {
            verbatim: None,
            text,
            net,
            assign,
        },
        opened,
    ))
}

/// A comment from `at` to the end of the line: fine alone on its line.
fn comment(
    text: &str,
    at: usize,
    net: i32,
    lineno: usize,
    opened: Option<Open>,
) -> Result<(Line<'_>, Option<Open>), FormatError> {
    if at > 0 {
        return Err(FormatError::TrailingComment(lineno));
    }
    Ok((
        Line {
            verbatim: None,
            text,
            net,
            assign: None,
        },
        opened,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_by_bracket_lines_and_aligns_chains() {
        let src = "resource \"a\" \"b\" {\ncount = 1\n    for_each_long = {}\n\nx = [\n\"y\",\n]\n  tags = { Name = \"n\" }\n}\n";
        let want = "resource \"a\" \"b\" {\n  count         = 1\n  for_each_long = {}\n\n  x = [\n    \"y\",\n  ]\n  tags = { Name = \"n\" }\n}\n";
        assert_eq!(format(src).unwrap(), want);
        assert_eq!(format(want).unwrap(), want, "idempotent");
    }

    #[test]
    fn strings_comparisons_and_heredocs_are_not_code() {
        let src = "locals {\n  a = \"x = {${var.b[\"k\"]}\"\n  cond = var.a == \"{\"\n  doc = <<-EOT\n      kept   as  is {\n    EOT\n}\n";
        let out = format(src).unwrap();
        assert!(out.contains("  a    = \"x = {${var.b[\"k\"]}\"\n"), "{out}");
        assert!(out.contains("  cond = var.a == \"{\"\n"), "{out}");
        assert!(out.contains("      kept   as  is {\n"), "{out}");
        assert_eq!(format(&out).unwrap(), out);
    }

    #[test]
    fn a_multi_line_value_breaks_the_chain() {
        let src = "a = 1\nlonger = {\n  b = 2\n}\nc = 3\n";
        assert_eq!(format(src).unwrap(), src);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(format("a = \"open\n"), Err(FormatError::OpenString(1)));
        assert_eq!(format("a {\n"), Err(FormatError::Unbalanced(1)));
        assert_eq!(format("}\n"), Err(FormatError::Unbalanced(1)));
        assert_eq!(
            format("a = 1 # why\n"),
            Err(FormatError::TrailingComment(1))
        );
        assert_eq!(format("a = <<EOT\nx\n"), Err(FormatError::Unclosed(2)));
    }
}
