//! Page tokens (hearth-server's `PageTokens`, with a fixed secret). The first byte is the
//! listing's length, then the listing, then the rest: read as a token, a decoded token must be
//! the one token of its cursor; used as a cursor, its token decodes to it, for its own listing
//! only, and no one-character change of the token is accepted.

#![no_main]

use hearth_server::fuzzing::{decode_page_token, test_page_tokens};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static TOKENS: LazyLock<hearth_server::fuzzing::PageTokens> = LazyLock::new(test_page_tokens);

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fuzz_target!(|data: &[u8]| {
    let Some((&length, rest)) = data.split_first() else { return };
    let (listing, rest) = rest.split_at(usize::from(length).min(rest.len()));
    let listing = String::from_utf8_lossy(listing);
    let tokens = &*TOKENS;

    if let Ok(token) = std::str::from_utf8(rest)
        && let Ok(cursor) = decode_page_token(tokens, &listing, token)
    {
        assert_eq!(tokens.encode(&listing, &cursor), token, "a token that decodes is the one token of its cursor");
    }

    let cursor = rest;
    let token = tokens.encode(&listing, cursor);
    assert_eq!(decode_page_token(tokens, &listing, &token).expect("a fresh token decodes"), cursor);
    let other = format!("{listing}\0");
    assert!(decode_page_token(tokens, &other, &token).is_err(), "a token is bound to its listing");
    // Change one character (where and to what, from the input) to another base64url character.
    let at = cursor.first().map_or(0, |&b| usize::from(b)) % token.len();
    let mut tampered = token.clone().into_bytes();
    let shift = cursor.last().map_or(1, |&b| usize::from(b) % (BASE64URL.len() - 1) + 1);
    let index = BASE64URL.iter().position(|&c| c == tampered[at]).expect("base64url");
    tampered[at] = BASE64URL[(index + shift) % BASE64URL.len()];
    let tampered = String::from_utf8(tampered).expect("ASCII");
    assert!(decode_page_token(tokens, &listing, &tampered).is_err(), "a changed token is refused: {tampered}");
});
