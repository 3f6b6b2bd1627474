/// Names and paths taken from an image (or a peer) before ferry joins them
/// into a path or opens them: an image never steers ferry outside the
/// place it means. A single name (a container's name, joined under a
/// cgroup directory) must be one plain component; a path (an executable, a
/// mapped or open file, a working directory) must be absolute and
/// normalized, as the kernel writes them in /proc.
public enum ImagePath {
    public enum Form: Sendable {
        /// One path component: not empty, not `.` or `..`, no `/`, at most 255 bytes.
        case name
        /// Starts with `/`; no `.` or `..` component.
        case absolute
    }

    /// Why `text` cannot be used as `form` (nil: it can). Neither form may hold a NUL.
    public static func problem(_ text: String, as form: Form) -> String? {
        if text.utf8.contains(0) { return "it contains a NUL byte" }
        switch form {
        case .name:
            if text.isEmpty { return "it is empty" }
            if text == "." || text == ".." { return "it is \"\(text)\"" }
            if text.contains("/") { return "it contains a \"/\"" }
            if text.utf8.count > 255 { return "it is longer than 255 bytes" }
        case .absolute:
            guard text.hasPrefix("/") else { return "it is not an absolute path" }
            for c in text.split(separator: "/", omittingEmptySubsequences: true) where c == "." || c == ".." {
                return "it has a \"\(c)\" component"
            }
        }
        return nil
    }

    /// Throws when `text` cannot be used as `form`: one line naming `field`.
    public static func check(_ text: String, as form: Form, field: String, in file: String) throws {
        if let why = problem(text, as: form) {
            throw ImageError(file: file, "\(field) \(quoted(text)) is refused: \(why)")
        }
    }

    /// The text in quotes, with control characters and NUL escaped (it goes into a one-line message).
    public static func quoted(_ text: String) -> String {
        var out = "\""
        for u in text.unicodeScalars {
            if u.value < 0x20 || u == "\"" || u == "\\" || u.value == 0x7f {
                out += "\\u{\(String(u.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
