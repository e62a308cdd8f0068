//! The knowledge base: question/answer entries per topic, loaded at start from
//! `<data_dir>/knowledge/<topic>.toml` and the shipped `hearth` topic (which a file of that
//! name replaces), searched in the store's full-text index. A confident match answers without
//! a provider and costs no allowance.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use hearth_store::{KnowledgeEntry, Store, StoreError};
use serde::Deserialize;

/// The topic asked under when a request names none, and the assistant conversation's.
pub const DEFAULT_TOPIC: &str = "hearth";

/// The shipped entries about using hearth.
const SHIPPED: &str = include_str!("knowledge/hearth.toml");

/// Candidates the full-text search returns before the confidence check picks one.
const CANDIDATES: u32 = 5;

/// Share of the question's meaningful words the prompt must contain, and of the prompt's
/// words the question must contain, for a match to be confident.
const MIN_COVERAGE: f64 = 0.6;

/// Words too common to say what a question is about.
const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from", "get",
    "how", "i", "if", "in", "is", "it", "its", "me", "my", "of", "on", "or", "please", "should", "so", "some", "that",
    "the", "their", "there", "this", "to", "use", "was", "way", "what", "when", "where", "which", "who", "why", "will",
    "with", "would", "you", "your",
];

/// A knowledge file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnowledgeFile {
    #[serde(default)]
    entry: Vec<FileEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    question: String,
    answer: String,
}

/// Every entry: the shipped topic, then each `<dir>/*.toml` (a file replaces a shipped topic of
/// the same name). The error names the file and what is wrong with it.
pub fn load(dir: &Path) -> Result<Vec<KnowledgeEntry>, String> {
    let mut topics: BTreeMap<String, Vec<FileEntry>> = BTreeMap::new();
    topics.insert(DEFAULT_TOPIC.to_owned(), parse(SHIPPED).map_err(|e| format!("shipped knowledge: {e}"))?.entry);
    let files = match std::fs::read_dir(dir) {
        Ok(files) => files,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(flatten(topics)),
        Err(error) => return Err(format!("{}: {error}", dir.display())),
    };
    for file in files {
        let path = file.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        let topic = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().to_ascii_lowercase();
        if !super::is_identifier(&topic) {
            return Err(format!("{}: a topic (the file name) is 1 to 100 letters, digits, '-' or '_'", path.display()));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        topics.insert(topic, file.entry);
    }
    Ok(flatten(topics))
}

fn parse(text: &str) -> Result<KnowledgeFile, String> {
    let file: KnowledgeFile = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.entry.iter().any(|entry| entry.question.trim().is_empty() || entry.answer.trim().is_empty()) {
        return Err("every [[entry]] needs a question and an answer".to_owned());
    }
    Ok(file)
}

fn flatten(topics: BTreeMap<String, Vec<FileEntry>>) -> Vec<KnowledgeEntry> {
    topics
        .into_iter()
        .flat_map(|(topic, entries)| {
            entries.into_iter().map(move |entry| KnowledgeEntry {
                topic: topic.clone(),
                question: entry.question.trim().to_owned(),
                answer: entry.answer.trim().to_owned(),
            })
        })
        .collect()
}

/// The knowledge base as the assistant asks it: the store's full-text index, behind the words
/// each topic's questions use, so that most prompts (which no entry could match confidently)
/// cost no query at all.
#[derive(Debug, Default)]
pub struct KnowledgeBase {
    /// Every meaningful word of the questions, per topic.
    vocabulary: HashMap<String, HashSet<String>>,
}

impl KnowledgeBase {
    /// The knowledge base over `entries` (as loaded into the store).
    pub fn new(entries: &[KnowledgeEntry]) -> Self {
        let mut vocabulary: HashMap<String, HashSet<String>> = HashMap::new();
        for entry in entries {
            vocabulary.entry(entry.topic.clone()).or_default().extend(meaningful_words(&entry.question));
        }
        Self { vocabulary }
    }

    /// The answer to `prompt` under `topic`, if an entry matches it confidently.
    pub async fn answer(&self, store: &dyn Store, topic: &str, prompt: &str) -> Result<Option<String>, StoreError> {
        let asked = meaningful_words(prompt);
        let Some(vocabulary) = self.vocabulary.get(topic) else { return Ok(None) };
        // A confident match needs most of the prompt's words in one question, so at least as
        // many in all the topic's questions together: otherwise there is nothing to search for.
        let known = asked.iter().filter(|word| vocabulary.contains(*word)).count();
        if asked.is_empty() || (known as f64) < MIN_COVERAGE * asked.len() as f64 {
            return Ok(None);
        }
        let words: Vec<String> = asked.iter().cloned().collect();
        let candidates = store.search_knowledge(topic, &words, CANDIDATES).await?;
        Ok(candidates.into_iter().find(|entry| confident(&asked, &meaningful_words(&entry.question))).map(|e| e.answer))
    }
}

/// Whether a question with `known` words answers a prompt with `asked` words: each contains
/// most of the other's meaningful words.
fn confident(asked: &BTreeSet<String>, known: &BTreeSet<String>) -> bool {
    if known.is_empty() {
        return false;
    }
    let shared = asked.iter().filter(|word| known.contains(*word)).count() as f64;
    shared / asked.len() as f64 >= MIN_COVERAGE && shared / known.len() as f64 >= MIN_COVERAGE
}

/// The words that say what a text is about: lower case, stop words dropped, plural and verb
/// endings trimmed so "messages" meets "message" and "starting" meets "start".
fn meaningful_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|word| word.chars().count() > 1 && !STOP_WORDS.contains(&word.as_str()))
        .map(|word| stem(&word))
        .collect()
}

fn stem(word: &str) -> String {
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.chars().count() >= 3
        {
            return stem.to_owned();
        }
    }
    word.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> BTreeSet<String> {
        meaningful_words(text)
    }

    #[test]
    fn confidence_needs_most_words_on_both_sides() {
        let question = words("I forgot my password. How do I reset it?");
        assert!(confident(&words("how can I reset my password"), &question));
        assert!(confident(&words("Forgot password, reset?"), &question));
        assert!(!confident(&words("password"), &question), "too little of the question");
        assert!(!confident(&words("how do I reset the router of my flat when wifi is down"), &question));
        assert!(confident(
            &words("Starting a private conversation"),
            &words("How do I start a private conversation with someone?")
        ));
    }

    #[test]
    fn the_shipped_entries_load_and_files_add_or_replace_topics() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shipped = load(&dir.path().join("missing")).expect("the shipped topic loads");
        assert!(shipped.len() >= 10 && shipped.iter().all(|entry| entry.topic == DEFAULT_TOPIC));

        std::fs::write(
            dir.path().join("DSA.toml"),
            "[[entry]]\nquestion = \"What is a heap?\"\nanswer = \"A tree.\"\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("hearth.toml"), "[[entry]]\nquestion = \"Who?\"\nanswer = \"Us.\"\n")
            .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let loaded = load(dir.path()).expect("loads");
        let topics: Vec<(&str, &str)> = loaded.iter().map(|e| (e.topic.as_str(), e.question.as_str())).collect();
        assert_eq!(topics, [("dsa", "What is a heap?"), ("hearth", "Who?")]);

        std::fs::write(dir.path().join("bad.toml"), "[[entry]]\nquestion = \"No answer\"\n").expect("write");
        let error = load(dir.path()).expect_err("a broken file is refused");
        assert!(error.contains("bad.toml"), "{error}");
    }
}
