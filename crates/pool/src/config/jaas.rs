//! The `sasl.jaas.config` value, as Java Kafka clients write it.
//!
//! This file owns [`JaasLogin`]: the parse of
//! `LoginModuleClass controlFlag option="value" option2=value2;` into the
//! login module's class name and the `username` and `password` options,
//! following Kafka's `JaasConfig` tokenizer: blanks (any character up to
//! U+0020) separate tokens; values are bare words or quoted with `"` or `'`
//! (quoted values may hold spaces and backslash escapes such as `\"`);
//! `//`, `/* */` comments may appear between tokens; the control flag is
//! `required`, `requisite`, `sufficient` or `optional` in any case.
//! Differences from Kafka, all lenient: a missing final `;` is tolerated, and
//! a bare value may contain `/`.
//!
//! It never logs, and its errors never contain the text they parse (an
//! option name could be a mistyped password), only positions and what was
//! expected.

use std::str::Chars;

use super::error::ConfigError;
use super::secret::Secret;

/// The login module and credentials of a `sasl.jaas.config` value.
///
/// `Debug` shows the password as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasLogin {
    /// The login module's class name, e.g.
    /// `org.apache.kafka.common.security.scram.ScramLoginModule`.
    pub login_module: String,
    /// The `username` option.
    pub username: Option<String>,
    /// The `password` option.
    pub password: Option<Secret>,
    /// The names of the other options (values are not kept).
    pub other_options: Vec<String>,
}

/// The login module classes Java clients use for SASL, and what kmirror
/// makes of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginModuleKind {
    /// `org.apache.kafka.common.security.plain.PlainLoginModule`.
    Plain,
    /// `org.apache.kafka.common.security.scram.ScramLoginModule`.
    Scram,
    /// Kerberos (`Krb5LoginModule`): not supported.
    Kerberos,
    /// OAuth (`OAuthBearerLoginModule`): not supported.
    OAuthBearer,
    /// Anything else.
    Other,
}

impl JaasLogin {
    /// Parses a `sasl.jaas.config` value. It must hold exactly one login
    /// module, as Kafka clients require.
    pub fn parse(text: &str) -> Result<JaasLogin, ConfigError> {
        let mut lexer = Lexer::new(text);
        let module = match lexer.next_token()? {
            None => return Err(jaas_error("it is empty; it needs a login module class")),
            Some((Token::Word(word), _)) => word,
            Some((token, at)) => {
                return Err(jaas_error(format!(
                    "expected the login module class name at character {at}, found {}",
                    token.describe()
                )));
            }
        };
        match lexer.next_token()? {
            Some((Token::Word(flag), _))
                if ["required", "requisite", "sufficient", "optional"]
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&flag)) => {}
            Some((token, at)) => {
                return Err(jaas_error(format!(
                    "expected the control flag `required` after the login module class, at \
                     character {at}, found {}",
                    token.describe()
                )));
            }
            None => {
                return Err(jaas_error(
                    "the control flag is missing after the login module class; add `required`",
                ));
            }
        }
        let mut login = JaasLogin {
            login_module: module,
            username: None,
            password: None,
            other_options: Vec::new(),
        };
        loop {
            let (name, name_at) = match lexer.next_token()? {
                None | Some((Token::Semicolon, _)) => break,
                Some((Token::Word(name), at)) => (name, at),
                Some((token, at)) => {
                    return Err(jaas_error(format!(
                        "expected an option name or `;` at character {at}, found {}",
                        token.describe()
                    )));
                }
            };
            match lexer.next_token()? {
                Some((Token::Equals, _)) => {}
                Some((token, at)) => {
                    return Err(jaas_error(format!(
                        "expected `=` after the option name at character {name_at}, found {} \
                         at character {at}",
                        token.describe()
                    )));
                }
                None => {
                    return Err(jaas_error(format!(
                        "the option name at character {name_at} has no `=` and value"
                    )));
                }
            }
            let value = match lexer.next_token()? {
                Some((Token::Word(v) | Token::Quoted(v), _)) => v,
                Some((token, at)) => {
                    return Err(jaas_error(format!(
                        "expected the value of the option at character {name_at}, found {} at \
                         character {at}; quote values with \"...\"",
                        token.describe()
                    )));
                }
                None => {
                    return Err(jaas_error(format!(
                        "the option at character {name_at} has no value"
                    )));
                }
            };
            match name.as_str() {
                "username" => login.username = Some(value),
                "password" => login.password = Some(Secret::new(value)),
                _ => {
                    if !login.other_options.contains(&name) {
                        login.other_options.push(name);
                    }
                }
            }
        }
        if let Some((_, at)) = lexer.next_token()? {
            return Err(jaas_error(format!(
                "it holds more than one login module (the second starts at character {at}); \
                 Kafka clients take exactly one"
            )));
        }
        Ok(login)
    }

    /// What kind of login module this is.
    pub(crate) fn kind(&self) -> LoginModuleKind {
        let class = self.login_module.as_str();
        let simple = class.rsplit('.').next().unwrap_or(class);
        match simple {
            "PlainLoginModule" => LoginModuleKind::Plain,
            "ScramLoginModule" => LoginModuleKind::Scram,
            "Krb5LoginModule" => LoginModuleKind::Kerberos,
            "OAuthBearerLoginModule" => LoginModuleKind::OAuthBearer,
            _ => LoginModuleKind::Other,
        }
    }
}

/// A [`ConfigError::Jaas`].
fn jaas_error(reason: impl Into<String>) -> ConfigError {
    ConfigError::Jaas {
        reason: reason.into(),
    }
}

/// A token of a JAAS configuration.
#[derive(Debug)]
enum Token {
    /// A bare word: class name, control flag, option name or value.
    Word(String),
    /// A quoted value, unescaped.
    Quoted(String),
    /// `=`.
    Equals,
    /// `;`.
    Semicolon,
}

impl Token {
    /// What the token is, without its text.
    fn describe(&self) -> &'static str {
        match self {
            Token::Word(_) => "a word",
            Token::Quoted(_) => "a quoted string",
            Token::Equals => "`=`",
            Token::Semicolon => "`;`",
        }
    }
}

/// Splits a JAAS configuration into tokens, tracking the 1-based character
/// position.
struct Lexer<'a> {
    chars: Chars<'a>,
    /// Characters consumed so far.
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.clone().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.chars.clone();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        self.pos += 1;
        Some(c)
    }

    /// Skips blanks and comments.
    fn skip_blanks(&mut self) -> Result<(), ConfigError> {
        loop {
            match (self.peek(), self.peek2()) {
                (Some(c), _) if is_blank(c) => {
                    self.bump();
                }
                (Some('/'), Some('*')) => {
                    let at = self.pos + 1;
                    self.bump();
                    self.bump();
                    let mut prev = '\0';
                    loop {
                        match self.bump() {
                            Some('/') if prev == '*' => break,
                            Some(c) => prev = c,
                            None => {
                                return Err(jaas_error(format!(
                                    "the comment opened at character {at} is not closed with */"
                                )));
                            }
                        }
                    }
                }
                // `//` and a single `/` (Kafka's comment character) run to
                // the end of the line.
                (Some('/'), _) => {
                    while let Some(c) = self.bump() {
                        if c == '\n' || c == '\r' {
                            break;
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next token and the position of its first character.
    fn next_token(&mut self) -> Result<Option<(Token, usize)>, ConfigError> {
        self.skip_blanks()?;
        let at = self.pos + 1;
        let Some(c) = self.bump() else {
            return Ok(None);
        };
        let token = match c {
            '=' => Token::Equals,
            ';' => Token::Semicolon,
            '"' | '\'' => Token::Quoted(self.quoted(c, at)?),
            first => {
                let mut word = String::new();
                word.push(first);
                while let Some(c) = self.peek() {
                    if is_blank(c) || matches!(c, '=' | ';' | '"' | '\'') {
                        break;
                    }
                    word.push(c);
                    self.bump();
                }
                Token::Word(word)
            }
        };
        Ok(Some((token, at)))
    }

    /// The rest of a quoted string opened by `quote` at `at`, with escapes
    /// resolved as Java's `StreamTokenizer` does.
    fn quoted(&mut self, quote: char, at: usize) -> Result<String, ConfigError> {
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(jaas_error(format!(
                    "the quoted value starting at character {at} is not closed; end it with {quote}"
                )));
            };
            if c == quote {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.bump() else {
                return Err(jaas_error(format!(
                    "the quoted value starting at character {at} ends with a lone backslash; \
                     write \\\\ for a backslash and close the quote with {quote}"
                )));
            };
            match e {
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\u{b}'),
                '0'..='7' => {
                    // Octal: up to three digits, the value at most 0o377.
                    let mut code = e.to_digit(8).unwrap_or(0);
                    let max_digits = if e <= '3' { 2 } else { 1 };
                    for _ in 0..max_digits {
                        match self.peek().and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                code = code * 8 + d;
                                self.bump();
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                other => out.push(other),
            }
        }
    }
}

/// Kafka's JAAS tokenizer treats every character up to U+0020 as blank.
fn is_blank(c: char) -> bool {
    c <= ' '
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_as_java_clients_write_it() {
        let login = JaasLogin::parse(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"alice-secret\";",
        )
        .unwrap();
        assert_eq!(
            login.login_module,
            "org.apache.kafka.common.security.scram.ScramLoginModule"
        );
        assert_eq!(login.username.as_deref(), Some("alice"));
        assert_eq!(login.password.as_ref().unwrap().expose(), "alice-secret");
        assert_eq!(login.kind(), LoginModuleKind::Scram);
        assert!(login.other_options.is_empty());
        assert!(!format!("{login:?}").contains("alice-secret"));
    }

    #[test]
    fn plain_with_bare_values_and_no_final_semicolon() {
        let login = JaasLogin::parse(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=bob password=b0b-pw",
        )
        .unwrap();
        assert_eq!(login.username.as_deref(), Some("bob"));
        assert_eq!(login.password.unwrap().expose(), "b0b-pw");
        assert_eq!(
            JaasLogin::parse("org.apache.kafka.common.security.plain.PlainLoginModule required username=x password=y;")
                .unwrap()
                .kind(),
            LoginModuleKind::Plain
        );
    }

    #[test]
    fn quoted_values_with_spaces_escapes_and_single_quotes() {
        let login = JaasLogin::parse(
            r#"ScramLoginModule REQUIRED username = 'al ice' password="p \"w\" \\ d;=x" tokenauth=true ;"#,
        )
        .unwrap();
        assert_eq!(login.username.as_deref(), Some("al ice"));
        assert_eq!(login.password.unwrap().expose(), r#"p "w" \ d;=x"#);
        assert_eq!(login.other_options, vec!["tokenauth".to_owned()]);
        let login = JaasLogin::parse(r#"M required password="a\tb\101\0";"#).unwrap();
        assert_eq!(login.password.unwrap().expose(), "a\tbA\0");
    }

    #[test]
    fn comments_and_newlines_between_tokens() {
        let login = JaasLogin::parse(
            "M /* the module */ required\n  username=\"u\" // the user\n  password=\"p\";",
        )
        .unwrap();
        assert_eq!(login.username.as_deref(), Some("u"));
        assert_eq!(login.password.unwrap().expose(), "p");
    }

    #[test]
    fn kinds() {
        for (class, kind) in [
            (
                "com.sun.security.auth.module.Krb5LoginModule",
                LoginModuleKind::Kerberos,
            ),
            (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
                LoginModuleKind::OAuthBearer,
            ),
            ("com.example.Mine", LoginModuleKind::Other),
        ] {
            let login = JaasLogin::parse(&format!("{class} required;")).unwrap();
            assert_eq!(login.kind(), kind);
        }
    }

    #[test]
    fn errors_say_what_is_wrong_and_never_show_the_password() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("M", "control flag is missing"),
            ("M mandatory username=\"u\";", "control flag"),
            ("M required username \"u\";", "expected `=`"),
            ("M required username=;", "expected the value"),
            ("M required username=", "has no value"),
            ("M required username", "no `=`"),
            ("M required password=\"hunter2", "not closed"),
            ("M required password=\"hunter2\\", "lone backslash"),
            ("M required = \"hunter2\";", "expected an option name"),
            ("M required /* hunter2", "comment"),
            ("= required;", "login module class"),
            ("A required; B required;", "more than one login module"),
            ("M required password=\"hunter2\" hunter2;", "expected `=`"),
        ];
        for (text, expected) in cases {
            let e = JaasLogin::parse(text).unwrap_err();
            let message = e.to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
            assert!(
                message.starts_with("cannot parse sasl.jaas.config: "),
                "{message}"
            );
            assert!(!message.contains("hunter2"), "{message}");
            assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
        }
    }

    #[test]
    fn never_panics() {
        let text = "M required username=\"a\\\"b\" password='c\\377d\\4' /*x*/ o=v;";
        for (i, _) in text.char_indices() {
            let _ = JaasLogin::parse(text.get(..i).unwrap());
        }
        for s in [
            "\\",
            "\"",
            "'",
            "/",
            "/*",
            "//",
            "M required x=\"\\",
            "\u{0}",
        ] {
            let _ = JaasLogin::parse(s);
        }
    }

    #[test]
    fn never_panics_on_random_input() {
        const ALPHABET: &[char] = &[
            'a', 'k', '0', '9', 'u', 'D', 'F', '=', ':', ' ', '\t', '\u{c}', '\n', '\r', '\\', '#',
            '!', '"', '\'', ';', '/', '*', 'é', '😀', '\u{feff}',
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(ALPHABET[(state % ALPHABET.len() as u64) as usize]);
            }
            let _ = JaasLogin::parse(&text);
        }
    }
}
