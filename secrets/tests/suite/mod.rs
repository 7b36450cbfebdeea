mod decode;
mod exact;
mod examples;
mod gitleaks;
mod stream;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Examples {
    pub example: Vec<Example>,
}

#[derive(Debug, Deserialize)]
pub struct Example {
    pub rule: String,
    pub positive: Vec<String>,
    pub negative: Vec<String>,
}

pub fn examples() -> Examples {
    toml::from_str(include_str!("../../rules/examples.toml")).unwrap()
}
