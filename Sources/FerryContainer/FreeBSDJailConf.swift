import Foundation

/// Reads a FreeBSD configuration for one jail from text that may mix:
/// - jail.conf(5): `NAME { key = value; key += value; flag; }`, with global
///   parameters outside the block, `#`, `//` and `/* */` comments, quoted
///   strings and comma lists (`$variables` are not expanded);
/// - rctl.conf lines: `jail:NAME:resource:action=amount`, and `rctl -a RULE`;
/// - `cpuset -l LIST -j NAME` / `cpuset -n POLICY:DOMAINS -j NAME` lines;
/// - a `jail -c name=NAME key=value …` line.
/// `exec.created`/`exec.prestart`/`exec.poststart` commands that are `rctl -a`
/// or `cpuset` are taken as rules and cpusets; `rctl -r` cleanup commands
/// are recognised; other exec.* commands are reported as not translated.
enum JailConfParser {
    static func parse(_ text: String, source: String) throws -> Translated<FreeBSDJailConfig> {
        var confText = ""
        var ruleLines: [String] = []
        var cpusetCalls: [[String]] = []
        var createArgs: [String]?
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if isRuleLine(line) {
                ruleLines.append(line)
            } else if line.hasPrefix("rctl -a ") {
                ruleLines.append(String(line.dropFirst(8)).trimmingCharacters(in: .whitespaces))
            } else if line.hasPrefix("cpuset ") {
                cpusetCalls.append(Array(try shellWords(line, source: source).dropFirst()))
            } else if line.hasPrefix("jail -c ") {
                createArgs = Array(try shellWords(line, source: source).dropFirst(2))
            } else {
                confText += raw + "\n"
            }
        }
        var notes = NoteList()
        var (name, params) = try parseConf(confText, source: source)
        if let createArgs {
            for arg in createArgs {
                let kv = arg.split(separator: "=", maxSplits: 1)
                if kv[0] == "name" {
                    name = kv.count == 2 ? String(kv[1]) : nil
                } else {
                    params.append(.init(String(kv[0]), kv.count == 2 ? String(kv[1]) : nil))
                }
            }
        }
        var kept: [FreeBSDJailConfig.Parameter] = []
        for p in params {
            guard p.key.hasPrefix("exec.") else { kept.append(p); continue }
            let command = p.value ?? ""
            if command.hasPrefix("rctl -a ") {
                ruleLines.append(String(command.dropFirst(8)).trimmingCharacters(in: .whitespaces))
            } else if command.hasPrefix("cpuset ") {
                cpusetCalls.append(Array(try shellWords(command, source: source).dropFirst()))
            } else if !(p.key == "exec.poststop" && command.hasPrefix("rctl -r ")) {
                notes.drop(p.key, command, "a jail lifecycle command; Linux containers have no counterpart")
            }
        }
        var rules: [RctlRule] = []
        for line in ruleLines {
            let rule = try RctlRule(parsing: line)
            if !rules.contains(rule) { rules.append(rule) }
        }
        let jailName = name ?? rules.first { $0.subject == .jail }?.subjectID
        guard let jailName else {
            throw ContainerError.malformed(source: source, reason: "no jail found (no NAME { … } block, jail -c name=, or jail: rule)")
        }
        var cpuset = FreeBSDCpuset()
        for call in cpusetCalls {
            if let target = try cpuset.apply(arguments: call, source: "cpuset"), target != jailName {
                throw ContainerError.invalid(field: "cpuset -j", reason: "names jail \"\(target)\", not \"\(jailName)\"")
            }
        }
        return Translated(FreeBSDJailConfig(name: jailName, parameters: kept, rules: rules, cpuset: cpuset), notes: notes.items)
    }

    static func isRuleLine(_ line: String) -> Bool {
        guard !line.contains(" "), !line.contains(";"), !line.contains("{") else { return false }
        return RctlRule.Subject.allCases.contains { line.hasPrefix($0.rawValue + ":") }
    }

    // MARK: jail.conf

    private enum Token: Equatable { case word(String), open, close, semicolon, assign, append, comma }

    /// The jail's name (nil if there is no block) and its parameters, globals first.
    private static func parseConf(_ text: String, source: String) throws -> (String?, [FreeBSDJailConfig.Parameter]) {
        let tokens = try lex(text, source: source)
        var globals: [FreeBSDJailConfig.Parameter] = []
        var blocks: [(String, [FreeBSDJailConfig.Parameter])] = []
        var i = 0
        func fail(_ why: String) -> ContainerError { .malformed(source: source, reason: why) }
        func parameter(_ key: String) throws -> FreeBSDJailConfig.Parameter {
            guard i < tokens.count else { throw fail("missing ; after \(key)") }
            if tokens[i] == .semicolon { i += 1; return .init(key) }
            let append = tokens[i] == .append
            guard tokens[i] == .assign || append else { throw fail("expected = or ; after \(key)") }
            i += 1
            var values: [String] = []
            while i < tokens.count, tokens[i] != .semicolon {
                switch tokens[i] {
                case let .word(w): values.append(w)
                case .comma: break
                default: throw fail("unexpected punctuation in the value of \(key)")
                }
                i += 1
            }
            guard i < tokens.count else { throw fail("missing ; after \(key)") }
            i += 1
            return .init(key, values.joined(separator: ","), append: append)
        }
        while i < tokens.count {
            guard case let .word(word) = tokens[i] else { throw fail("expected a jail name or a parameter") }
            i += 1
            if i < tokens.count, tokens[i] == .open {
                i += 1
                var params: [FreeBSDJailConfig.Parameter] = []
                while i < tokens.count, tokens[i] != .close {
                    guard case let .word(key) = tokens[i] else { throw fail("expected a parameter in jail \(word)") }
                    i += 1
                    params.append(try parameter(key))
                }
                guard i < tokens.count else { throw fail("missing } for jail \(word)") }
                i += 1
                blocks.append((word, params))
            } else {
                globals.append(try parameter(word))
            }
        }
        guard blocks.count <= 1 else {
            throw fail("\(blocks.count) jails (\(blocks.map(\.0).joined(separator: ", "))); give one jail to translate")
        }
        return (blocks.first?.0, globals + (blocks.first?.1 ?? []))
    }

    private static func lex(_ text: String, source: String) throws -> [Token] {
        var tokens: [Token] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            let next = i + 1 < chars.count ? chars[i + 1] : "\0"
            if c.isWhitespace { i += 1; continue }
            if c == "#" || (c == "/" && next == "/") {
                while i < chars.count, chars[i] != "\n" { i += 1 }
                continue
            }
            if c == "/" && next == "*" {
                i += 2
                while i + 1 < chars.count, !(chars[i] == "*" && chars[i + 1] == "/") { i += 1 }
                guard i + 1 < chars.count else { throw ContainerError.malformed(source: source, reason: "unterminated /* comment") }
                i += 2
                continue
            }
            switch c {
            case "{": tokens.append(.open); i += 1
            case "}": tokens.append(.close); i += 1
            case ";": tokens.append(.semicolon); i += 1
            case ",": tokens.append(.comma); i += 1
            case "=": tokens.append(.assign); i += 1
            case "+" where next == "=": tokens.append(.append); i += 2
            case "\"", "'":
                var s = ""
                i += 1
                while i < chars.count, chars[i] != c {
                    if chars[i] == "\\", c == "\"", i + 1 < chars.count { i += 1 }
                    s.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw ContainerError.malformed(source: source, reason: "unterminated string") }
                i += 1
                tokens.append(.word(s))
            default:
                var s = ""
                while i < chars.count, !chars[i].isWhitespace, !"{};,=\"'".contains(chars[i]),
                      !(chars[i] == "+" && i + 1 < chars.count && chars[i + 1] == "=") {
                    s.append(chars[i])
                    i += 1
                }
                tokens.append(.word(s))
            }
        }
        return tokens
    }

    /// Splits a command line on blanks, honouring '…' and "…" quoting.
    static func shellWords(_ line: String, source: String) throws -> [String] {
        var words: [String] = []
        var current: String?
        var quote: Character?
        for c in line {
            if let q = quote {
                if c == q { quote = nil } else { current!.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
                current = current ?? ""
            } else if c.isWhitespace {
                if let w = current { words.append(w) }
                current = nil
            } else {
                current = (current ?? "") + String(c)
            }
        }
        guard quote == nil else { throw ContainerError.malformed(source: source, reason: "unterminated quote in \"\(line)\"") }
        if let w = current { words.append(w) }
        return words
    }
}
