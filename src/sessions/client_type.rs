//! Which assistant is on the other end, from `clientInfo.name`.

/// Known clients: a lowercase fragment of `clientInfo.name` and the label Steward shows.
/// Order matters: the first match wins, so more specific fragments come first.
const KNOWN_CLIENTS: &[(&str, &str)] = &[
    ("claude-code", "Claude Code"),
    ("claude code", "Claude Code"),
    ("claude-ai", "Claude Desktop"),
    ("claude desktop", "Claude Desktop"),
    ("cursor", "Cursor"),
    ("windsurf", "Windsurf"),
    ("codeium", "Windsurf"),
    ("roo-code", "Roo Code"),
    ("roo code", "Roo Code"),
    ("cline", "Cline"),
    ("visual studio code", "VS Code"),
    ("vscode", "VS Code"),
    ("vs code", "VS Code"),
    ("gemini", "Gemini CLI"),
    ("codex", "Codex"),
    ("zed", "Zed"),
    ("kiro", "Kiro"),
    ("augment", "Augment"),
    ("inspector", "MCP Inspector"),
    ("continue", "Continue"),
    ("goose", "Goose"),
    ("jetbrains", "JetBrains"),
    ("copilot", "GitHub Copilot"),
    ("steward-check", "Steward check"),
];

/// The client's label, or `"unknown"` (the raw name is kept in `client_name`).
pub fn detect(client_name: &str) -> &'static str {
    // A client's name is its own choice: look at a bounded prefix only.
    let name = crate::protocol::cut_client_text(client_name).to_lowercase();
    KNOWN_CLIENTS
        .iter()
        .find(|(fragment, _)| name.contains(fragment))
        .map_or("unknown", |(_, label)| label)
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn detects_real_client_names() {
        for (name, label) in [
            ("claude-code", "Claude Code"),
            ("Claude Code", "Claude Code"),
            ("cursor-vscode", "Cursor"),
            ("Visual Studio Code", "VS Code"),
            ("Visual Studio Code - Insiders", "VS Code"),
            ("gemini-cli-mcp-client", "Gemini CLI"),
            ("codex-mcp-client", "Codex"),
            ("Zed", "Zed"),
            ("mcp-inspector", "MCP Inspector"),
            ("Cline", "Cline"),
            ("windsurf-client", "Windsurf"),
        ] {
            assert_eq!(detect(name), label, "{name}");
        }
    }

    #[test]
    fn unknown_names_stay_unknown() {
        assert_eq!(detect("curl"), "unknown");
        assert_eq!(detect(""), "unknown");
    }
}
