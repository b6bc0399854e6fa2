//! Values out of HTML: the field rules a scrape applies (a CSS selector,
//! what to take from the element it finds, an optional regex), and the
//! walk over a listing page's rows and its `next` link.
//!
//! Parsed documents are not `Send`, so every function here parses, extracts
//! and drops the document before returning owned values.

use regex::Regex;
use reqwest::Url;
use scraper::{ElementRef, Html, Node, Selector};

/// What a field takes from the element its selector finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extract {
    /// The text, whitespace-normalised (the default).
    Text,
    /// The inner HTML.
    Html,
    /// The element's own HTML, tags included.
    OuterHtml,
    /// An attribute's value; `href` and `src` are made absolute against the page.
    Attr(String),
}

impl Extract {
    /// Reads `text`, `html`, `outer_html` or `attr:<name>`.
    pub fn parse(spelling: &str) -> Result<Extract, String> {
        let trimmed = spelling.trim();
        match trimmed {
            "text" => Ok(Extract::Text),
            "html" => Ok(Extract::Html),
            "outer_html" => Ok(Extract::OuterHtml),
            _ => match trimmed.strip_prefix("attr:").map(str::trim) {
                Some(name) if is_attribute_name(name) => Ok(Extract::Attr(name.to_string())),
                _ => Err(format!(
                    "extract = {spelling:?}: expected \"text\", \"html\", \"outer_html\" or \"attr:<name>\""
                )),
            },
        }
    }
}

/// Whether `name` can be an HTML attribute's name (`href`, `data-id`, `xlink:href`).
fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
}

/// Splits the shorthand `".name@href"` into the selector and the attribute.
///
/// The `@` counts only outside brackets and quotes, so attribute selectors
/// such as `a[href*="@"]` stay whole; `"@href"` alone is the row element's
/// own attribute.
pub fn split_shorthand(spec: &str) -> (&str, Option<&str>) {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut at = None;
    for (i, c) in spec.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => depth = depth.saturating_sub(1),
            (None, '@') if depth == 0 => at = Some(i),
            _ => {}
        }
    }
    match at {
        Some(i) if is_attribute_name(spec[i + 1..].trim()) => {
            (spec[..i].trim(), Some(spec[i + 1..].trim()))
        }
        _ => (spec.trim(), None),
    }
}

/// Parses a CSS selector; `""` and `"."` mean the element itself (`None`).
pub fn parse_selector(selector: &str) -> Result<Option<Selector>, String> {
    let selector = selector.trim();
    if selector.is_empty() || selector == "." {
        return Ok(None);
    }
    Selector::parse(selector)
        .map(Some)
        .map_err(|e| format!("{selector:?} is not a CSS selector: {e}"))
}

/// Collapses runs of whitespace into one space and trims the ends.
pub fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Keeps the first capture group of `regex` in `value` (the whole match
/// when the regex has no group); `None` when it does not match.
pub fn apply_regex(regex: &Regex, value: &str) -> Option<String> {
    let captures = regex.captures(value)?;
    let kept = if regex.captures_len() > 1 {
        captures.get(1)?
    } else {
        captures.get(0)?
    };
    Some(kept.as_str().to_string())
}

/// One field, ready to apply to a row element.
#[derive(Debug, Clone)]
pub struct FieldRule {
    /// The column it fills.
    pub name: String,
    /// What to select inside the row; `None` for the row element itself.
    pub selector: Option<Selector>,
    /// What to take from the element.
    pub extract: Extract,
    /// Narrows the value to a capture.
    pub regex: Option<Regex>,
}

impl FieldRule {
    /// The value this field takes from `row`: `None` when the selector or
    /// the regex matches nothing.
    fn value(&self, row: ElementRef<'_>, base: &Url) -> Option<String> {
        let element = match &self.selector {
            None => row,
            Some(selector) => row.select(selector).next()?,
        };
        let raw = match &self.extract {
            Extract::Text => text_of(element),
            Extract::Html => element.inner_html(),
            Extract::OuterHtml => element.html(),
            Extract::Attr(name) => {
                let value = element.attr(name)?.trim();
                if matches!(name.as_str(), "href" | "src") {
                    base.join(value)
                        .map(String::from)
                        .unwrap_or_else(|_| value.to_string())
                } else {
                    value.to_string()
                }
            }
        };
        match &self.regex {
            Some(regex) => apply_regex(regex, &raw),
            None => Some(raw),
        }
    }
}

/// Elements whose text is not part of the page's visible text.
const HIDDEN: &[&str] = &["script", "style", "template", "noscript", "head"];

/// Elements that separate words: their text never runs into a neighbour's.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "td",
    "th",
    "tr",
    "ul",
];

/// The visible text of `element`, whitespace-normalised: script and style
/// contents left out, block elements and `<br>` separating words.
pub fn text_of(element: ElementRef<'_>) -> String {
    enum Step<N> {
        Visit(N),
        Space,
    }
    let mut text = String::new();
    let mut stack: Vec<_> = element.children().rev().map(Step::Visit).collect();
    while let Some(step) = stack.pop() {
        let node = match step {
            Step::Space => {
                text.push(' ');
                continue;
            }
            Step::Visit(node) => node,
        };
        match node.value() {
            Node::Text(t) => text.push_str(t),
            Node::Element(e) if HIDDEN.contains(&e.name()) => {}
            Node::Element(e) => {
                let block = BLOCKS.contains(&e.name());
                if block {
                    text.push(' ');
                    stack.push(Step::Space);
                }
                stack.extend(node.children().rev().map(Step::Visit));
            }
            _ => {}
        }
    }
    normalise(&text)
}

/// What one listing page holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// Each row's field values, in the order of the rules.
    pub rows: Vec<Vec<Option<String>>>,
    /// The page the `next` selector points to, absolute.
    pub next: Option<Url>,
}

/// The URL relative links on a page resolve against: its `<base href>`,
/// else the page's own URL.
fn base_url(document: &Html, page: &Url) -> Url {
    Selector::parse("base[href]")
        .ok()
        .and_then(|base| {
            document
                .select(&base)
                .next()
                .and_then(|e| e.attr("href"))
                .and_then(|href| page.join(href.trim()).ok())
        })
        .unwrap_or_else(|| page.clone())
}

/// Scrapes a listing page: one row per element matching `rows`, each field
/// taken inside it, and the `href` of the first match of `next`.
pub fn scrape_listing(
    html: &str,
    page: &Url,
    rows: &Selector,
    fields: &[FieldRule],
    next: Option<&Selector>,
) -> Listing {
    let document = Html::parse_document(html);
    let base = base_url(&document, page);
    let rows = document
        .select(rows)
        .map(|row| fields.iter().map(|f| f.value(row, &base)).collect())
        .collect();
    let next = next
        .and_then(|selector| document.select(selector).next())
        .and_then(|link| link.attr("href"))
        .map(str::trim)
        .filter(|href| !href.is_empty() && !href.starts_with('#'))
        .and_then(|href| base.join(href).ok());
    Listing { rows, next }
}

/// Scrapes a detail page: each field taken from the whole document.
pub fn scrape_detail(html: &str, page: &Url, fields: &[FieldRule]) -> Vec<Option<String>> {
    let document = Html::parse_document(html);
    let base = base_url(&document, page);
    let root = document.root_element();
    fields.iter().map(|f| f.value(root, &base)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, spec: &str) -> FieldRule {
        let (selector, attr) = split_shorthand(spec);
        FieldRule {
            name: name.into(),
            selector: parse_selector(selector).expect("selector"),
            extract: attr.map_or(Extract::Text, |a| Extract::Attr(a.into())),
            regex: None,
        }
    }

    #[test]
    fn shorthand_splits_selector_and_attribute() {
        assert_eq!(split_shorthand(".name@href"), (".name", Some("href")));
        assert_eq!(split_shorthand(".name"), (".name", None));
        assert_eq!(split_shorthand("@data-id"), ("", Some("data-id")));
        assert_eq!(
            split_shorthand(" img.main @ src "),
            ("img.main", Some("src"))
        );
        assert_eq!(
            split_shorthand("a[href*=\"@\"]"),
            ("a[href*=\"@\"]", None),
            "an @ inside brackets is part of the selector"
        );
        assert_eq!(
            split_shorthand("a[title='x@y']@href"),
            ("a[title='x@y']", Some("href"))
        );
        assert_eq!(split_shorthand("a@"), ("a@", None), "no attribute name");
    }

    #[test]
    fn extract_spellings() {
        assert_eq!(Extract::parse("text"), Ok(Extract::Text));
        assert_eq!(Extract::parse("html"), Ok(Extract::Html));
        assert_eq!(
            Extract::parse("attr:href"),
            Ok(Extract::Attr("href".into()))
        );
        let err = Extract::parse("attr:").expect_err("no name");
        assert!(err.contains("attr:<name>"), "{err}");
        assert!(Extract::parse("inner").is_err());
    }

    #[test]
    fn selectors_dot_and_empty_mean_the_row() {
        assert!(parse_selector("").expect("ok").is_none());
        assert!(parse_selector(" . ").expect("ok").is_none());
        assert!(parse_selector("li.product > .name").expect("ok").is_some());
        let err = parse_selector("li[").expect_err("bad");
        assert!(err.contains("\"li[\""), "{err}");
    }

    #[test]
    fn text_is_normalised_and_skips_scripts() {
        assert_eq!(normalise("  a \n\t b   c "), "a b c");
        let doc = Html::parse_fragment(
            "<div><p>Hello,\n  <b>wor</b><i>ld</i></p><p>next</p><script>var x = 1;</script>a<br>b</div>",
        );
        let div = doc
            .select(&Selector::parse("div").expect("selector"))
            .next()
            .expect("div");
        assert_eq!(text_of(div), "Hello, world next a b");
    }

    #[test]
    fn regex_keeps_the_first_group_or_the_match() {
        let price = Regex::new(r"([0-9.]+)").expect("regex");
        assert_eq!(apply_regex(&price, "$ 12.50 incl."), Some("12.50".into()));
        let whole = Regex::new(r"\d+").expect("regex");
        assert_eq!(apply_regex(&whole, "7 in stock"), Some("7".into()));
        let two = Regex::new(r"(\d+) of (\d+)").expect("regex");
        assert_eq!(apply_regex(&two, "3 of 9"), Some("3".into()));
        assert_eq!(apply_regex(&price, "call us"), None);
        let optional = Regex::new(r"x(\d)?").expect("regex");
        assert_eq!(
            apply_regex(&optional, "x"),
            None,
            "the group did not take part"
        );
    }

    #[test]
    fn listing_rows_fields_and_next() {
        let html = r#"<html><body><ul>
            <li class="p"><a class="name" href="/item/1">  Red
               mug </a><span class="price">$3.50</span></li>
            <li class="p"><a class="name" href="item/2">Blue mug</a></li>
            </ul><a class="next" href="?page=2">next</a></body></html>"#;
        let page = Url::parse("http://shop.test/list/index.html").expect("url");
        let fields = vec![
            rule("name", ".name"),
            rule("link", ".name@href"),
            rule("price", ".price"),
        ];
        let rows = Selector::parse("li.p").expect("selector");
        let next = Selector::parse("a.next").expect("selector");
        let listing = scrape_listing(html, &page, &rows, &fields, Some(&next));
        assert_eq!(
            listing.rows,
            vec![
                vec![
                    Some("Red mug".into()),
                    Some("http://shop.test/item/1".into()),
                    Some("$3.50".into())
                ],
                vec![
                    Some("Blue mug".into()),
                    Some("http://shop.test/list/item/2".into()),
                    None
                ],
            ]
        );
        assert_eq!(
            listing.next.map(String::from).as_deref(),
            Some("http://shop.test/list/index.html?page=2")
        );
    }

    #[test]
    fn base_href_and_detail_pages() {
        let html = r#"<html><head><base href="http://cdn.test/a/"></head>
            <body><h1 id="t">Title</h1><img src="x.png"></body></html>"#;
        let page = Url::parse("http://shop.test/p").expect("url");
        let fields = vec![
            rule("title", "#t"),
            rule("img", "img@src"),
            rule("none", ".nope"),
        ];
        assert_eq!(
            scrape_detail(html, &page, &fields),
            vec![
                Some("Title".into()),
                Some("http://cdn.test/a/x.png".into()),
                None
            ]
        );
    }
}
