//! Commands in the assistant conversation: a message starting with `/`.

/// What a message in the assistant conversation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/help`: the commands.
    Help,
    /// `/quota`: the free tier's use today and the sliding window.
    Quota,
    /// `/providers`: the providers in order, with their keys' health.
    Providers,
    /// `/image <prompt>`: generate an image.
    Image(&'a str),
    /// `/configure`: a one-time link to add a provider key of one's own.
    Configure,
    /// `/keys`: one's stored keys.
    Keys,
    /// `/forget <provider>`: delete one's stored keys of a provider.
    Forget(&'a str),
    /// `/set_default_api_key <provider>` (operators): a link whose key joins the free tier.
    SetDefaultApiKey(&'a str),
    /// A `/word` that is no command.
    Unknown(&'a str),
}

/// What `/help` answers.
pub const HELP: &str = "Ask me anything: write a message. Commands:\n\
    /image <description> — make an image\n\
    /configure — a one-time link to add an AI provider key of your own (sealed; never shown again)\n\
    /keys — your stored keys (provider, last four characters, health)\n\
    /forget <provider> — delete your stored keys for a provider\n\
    /quota — your free replies and images left today\n\
    /providers — which AI providers answer, in order, and whether their keys are healthy\n\
    /help — this list";

impl<'a> Command<'a> {
    /// The command `text` gives, or `None` when it is a prompt.
    pub fn parse(text: &'a str) -> Option<Self> {
        let text = text.trim();
        let rest = text.strip_prefix('/')?;
        let (name, argument) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let argument = argument.trim();
        Some(match name {
            "help" => Command::Help,
            "quota" => Command::Quota,
            "providers" => Command::Providers,
            "image" => Command::Image(argument),
            "configure" => Command::Configure,
            "keys" => Command::Keys,
            "forget" => Command::Forget(argument),
            "set_default_api_key" => Command::SetDefaultApiKey(argument),
            _ => Command::Unknown(text.split_whitespace().next().unwrap_or(text)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_prompts() {
        assert_eq!(Command::parse("/help"), Some(Command::Help));
        assert_eq!(Command::parse("  /quota  "), Some(Command::Quota));
        assert_eq!(Command::parse("/providers"), Some(Command::Providers));
        assert_eq!(Command::parse("/image a red fox\nin snow"), Some(Command::Image("a red fox\nin snow")));
        assert_eq!(Command::parse("/image"), Some(Command::Image("")));
        assert_eq!(Command::parse("/configure"), Some(Command::Configure));
        assert_eq!(Command::parse("/keys"), Some(Command::Keys));
        assert_eq!(Command::parse("/forget groq"), Some(Command::Forget("groq")));
        assert_eq!(Command::parse("/set_default_api_key openai"), Some(Command::SetDefaultApiKey("openai")));
        assert_eq!(Command::parse("/dance now"), Some(Command::Unknown("/dance")));
        assert_eq!(Command::parse("what is /quota?"), None);
        assert_eq!(Command::parse("hello"), None);
    }
}
