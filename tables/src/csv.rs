//! A frame as CSV text: a header of column names, one line per row, fields quoted only when
//! they hold a comma, a quote or a line break (RFC 4180); floats in their shortest form that
//! reads back to the same value.

use crate::{Frame, Values};

/// The whole file's text.
pub(crate) fn encode(frame: &Frame) -> String {
    let mut out = String::new();
    let names: Vec<&str> = frame.columns().iter().map(|c| c.name.as_str()).collect();
    line(&mut out, names.iter().map(|n| field(n)));
    for row in 0..frame.height() {
        line(
            &mut out,
            frame.columns().iter().map(|c| match &c.values {
                Values::Str(v) => field(&v[row]),
                // `{:?}` is the shortest text that parses back to the same f64 ("0.1", "2.0",
                // "1e-7"), as notebook readers expect; `{}` would spell 1e300 in 301 digits.
                Values::F64(v) => format!("{:?}", v[row]),
                Values::U64(v) => v[row].to_string(),
                Values::Bool(v) => v[row].to_string(),
            }),
        );
    }
    out
}

fn line(out: &mut String, fields: impl Iterator<Item = String>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&f);
    }
    out.push('\n');
}

/// One text field, quoted when it must be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use crate::{frame, Column};

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let f = frame(vec![
            Column::new("name", vec!["plain", "a,b", "say \"hi\""]),
            Column::new("x", vec![0.1, 2.0, 1e-7]),
            Column::new("n", vec![1u64, 2, u64::MAX]),
            Column::new("ok", vec![true, false, true]),
        ])
        .unwrap();
        assert_eq!(
            super::encode(&f),
            "name,x,n,ok\nplain,0.1,1,true\n\"a,b\",2.0,2,false\n\
             \"say \"\"hi\"\"\",1e-7,18446744073709551615,true\n"
        );
    }
}
