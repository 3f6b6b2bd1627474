import Foundation

/// Turns a spec into the text a user reads for each target, and the JSON
/// of `--json`. Kept here (not in the CLI) so it is tested with the rest.
public enum ContainerTranslation {
    public enum Target: String, Sendable { case oci, linux, freebsd }

    public struct Rendered: Sendable {
        public var text: String
        /// The structured output for --json.
        fileprivate var document: JSONValue
        public var notes: [Untranslated]
    }

    public static func render(_ spec: ContainerSpec, to target: Target, jailName: String? = nil) throws -> Rendered {
        switch target {
        case .oci:
            let t = OCIConfig.document(spec)
            return Rendered(text: t.output.rendered(), document: t.output, notes: t.notes)
        case .linux:
            let v1 = LinuxApplyPlan(spec, cgroup: .v1)
            let v2 = LinuxApplyPlan(spec, cgroup: .v2)
            var lines = ["# namespaces to create: " + v1.newNamespaces.map(\.ociName).joined(separator: " ")]
            lines += v1.joinNamespaces.map { "# namespace to join: \($0.kind.ociName) \($0.path ?? "")" }
            if let h = v1.hostname { lines.append("# hostname: \(h)") }
            if let r = v1.rootPath { lines.append("# root: \(r)") }
            if let m = v1.uidMap { lines.append("# uid_map: " + m.split(separator: "\n").joined(separator: "; ")) }
            if let m = v1.gidMap { lines.append("# gid_map: " + m.split(separator: "\n").joined(separator: "; ")) }
            lines += v1.rlimits.map { "# rlimit \($0.type) \($0.soft) \($0.hard)" }
            lines.append("# cgroup v1 writes")
            lines += v1.cgroupWrites.map(\.description)
            lines.append("# cgroup v2 writes (enable: \(v2.controllers.map { "+\($0)" }.joined(separator: " ")))")
            lines += v2.cgroupWrites.map(\.description)
            let doc = JSONValue.object(["v1": encode(v1), "v2": encode(v2)])
            var notes = v1.notes
            for n in v2.notes where !notes.contains(n) { notes.append(n) }
            return Rendered(text: lines.joined(separator: "\n") + "\n", document: doc, notes: notes)
        case .freebsd:
            let t = try FreeBSDJail.write(spec, name: jailName)
            let c = t.output
            var text = c.jailConf
            text += "# jail " + c.jailCreateArguments.map(FreeBSDJailConfig.quote).joined(separator: " ") + "\n"
            text += c.rctlLines.map { "# rctl -a \($0)\n" }.joined()
            text += c.cpusetArguments.map { "# cpuset \($0.joined(separator: " "))\n" }.joined()
            let doc = JSONValue.object([
                "jailConf": .string(c.jailConf),
                "jailCreate": .array(c.jailCreateArguments.map(JSONValue.string)),
                "rctl": .array(c.rctlLines.map(JSONValue.string)),
                "cpuset": .array(c.cpusetArguments.map { .array($0.map(JSONValue.string)) }),
            ])
            return Rendered(text: text, document: doc, notes: t.notes)
        }
    }

    /// `{"spec": …, "translation": …, "notTranslated": [{kind, field, value, reason}]}`.
    public static func json(spec: ContainerSpec, result: Rendered, notes: [Untranslated]) throws -> String {
        let doc = JSONValue.object([
            "spec": encode(spec),
            "translation": result.document,
            "notTranslated": encode(notes),
        ])
        return doc.rendered()
    }

    private static func encode<T: Encodable>(_ value: T) -> JSONValue {
        guard let data = try? JSONEncoder().encode(value), let v = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            return .null
        }
        return v
    }
}
