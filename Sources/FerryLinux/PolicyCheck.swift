#if os(Linux)
import Glibc
import FerryCore
import FerryImage

extension RestorePolicy {
    /// Throws the policy's refusal of `meta`, paths resolved on this host.
    public func enforce(_ meta: ImageMetadata) throws {
        guard !isOpen else { return }
        if let r = refusal(meta, resolve: RestorePolicy.realPath, owner: RestorePolicy.ownership) { throw r }
    }

    /// stat(2)'s owner, group and permission bits; nil where it fails.
    public static func ownership(_ path: String) -> FileOwnership? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileOwnership(uid: st.st_uid, gid: st.st_gid, mode: UInt32(st.st_mode) & 0o777)
    }

    /// realpath(3): every symlink followed; nil where the path does not exist.
    public static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
#endif
