#if os(Linux)
import Glibc
import FerryCore
import FerryImage

extension RestorePolicy {
    /// Throws the policy's refusal of `meta`, paths resolved on this host.
    public func enforce(_ meta: ImageMetadata) throws {
        guard !isOpen else { return }
        if let r = refusal(meta, resolve: RestorePolicy.realPath) { throw r }
    }

    /// realpath(3): every symlink followed; nil where the path does not exist.
    public static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
#endif
