//! `WWW-Authenticate` parsing (RFC 9110 section 11.6.1): the challenges, and what a Bearer
//! challenge (RFC 6750, RFC 9728 section 5.1) tells an OAuth client: `resource_metadata`,
//! `scope`, `error`.

/// One challenge: its scheme and its auth-params (names lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What a Bearer challenge says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bearer {
    /// Where the protected-resource metadata is (RFC 9728).
    pub resource_metadata: Option<String>,
    /// The scopes the request needs.
    pub scope: Option<String>,
    /// `invalid_token`, `insufficient_scope`...
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Every challenge of a header value (several may be comma-joined).
pub fn parse(header: &str) -> Vec<Challenge> {
    let b = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let is_sep = |c: u8| c == b',' || c == b'=' || c.is_ascii_whitespace();
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let start = i;
        while i < b.len() && !is_sep(b[i]) {
            i += 1;
        }
        if start == i {
            // A stray '=' (token68 padding): skip it.
            i += 1;
            continue;
        }
        let token = &header[start..i];
        let mut j = i;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' {
            j += 1;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            let (value, next) = value_at(header, j);
            if let Some(c) = out.last_mut() {
                c.params.push((token.to_ascii_lowercase(), value));
            }
            i = next;
        } else {
            out.push(Challenge { scheme: token.to_string(), params: Vec::new() });
        }
    }
    out
}

/// A quoted string (backslash escapes undone) or a token starting at `i`, and where it ends.
fn value_at(s: &str, i: usize) -> (String, usize) {
    let b = s.as_bytes();
    if i < b.len() && b[i] == b'"' {
        let mut out = String::new();
        let mut chars = s[i + 1..].char_indices();
        while let Some((k, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => return (out, i + 1 + k + 1),
                c => out.push(c),
            }
        }
        return (out, b.len());
    }
    let mut j = i;
    while j < b.len() && b[j] != b',' && !b[j].is_ascii_whitespace() {
        j += 1;
    }
    (s[i..j].to_string(), j)
}

/// The Bearer challenge of a header value, if there is one.
pub fn bearer(header: &str) -> Option<Bearer> {
    let c = parse(header).into_iter().find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
    let get = |n: &str| c.param(n).map(str::to_string).filter(|v| !v.is_empty());
    Some(Bearer {
        resource_metadata: get("resource_metadata"),
        scope: get("scope"),
        error: get("error"),
        error_description: get("error_description"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_bearer_challenge_as_mcp_servers_send_it() {
        let h = r#"Bearer error="invalid_token", error_description="Missing Authorization header", scope="mcp:basic mcp:write", resource_metadata="http://localhost:3000/.well-known/oauth-protected-resource/mcp""#;
        let b = bearer(h).unwrap();
        assert_eq!(b.error.as_deref(), Some("invalid_token"));
        assert_eq!(b.error_description.as_deref(), Some("Missing Authorization header"));
        assert_eq!(b.scope.as_deref(), Some("mcp:basic mcp:write"));
        assert_eq!(
            b.resource_metadata.as_deref(),
            Some("http://localhost:3000/.well-known/oauth-protected-resource/mcp")
        );
    }

    #[test]
    fn parses_several_challenges_tokens_and_escapes() {
        let h = r#"Basic realm="a, b", Bearer realm=x,scope="q\"z", error=insufficient_scope"#;
        let all = parse(h);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].scheme, "Basic");
        assert_eq!(all[0].param("realm"), Some("a, b"));
        assert_eq!(all[1].param("realm"), Some("x"));
        let b = bearer(h).unwrap();
        assert_eq!(b.scope.as_deref(), Some("q\"z"));
        assert_eq!(b.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(b.resource_metadata, None);
    }

    #[test]
    fn a_header_without_bearer_or_empty_has_no_bearer_challenge() {
        assert_eq!(bearer(""), None);
        assert_eq!(bearer("Basic realm=\"x\""), None);
        assert_eq!(bearer("bearer").unwrap(), Bearer::default());
        assert_eq!(parse("Negotiate abc==")[0].scheme, "Negotiate");
    }
}
