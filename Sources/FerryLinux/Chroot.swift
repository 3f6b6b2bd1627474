#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// A process's root directory (chroot): recorded at checkpoint as
/// /proc/PID/root shows it to ferry (a root deleted at its path is refused,
/// ProcessChecks), entered again on restore with chroot(2) injected in the
/// process once every path of the image is opened (`ChrootPlan`): fds,
/// cwd, the executable, /proc/self/loginuid; threads share it (CLONE_FS).
enum ChrootState {
    static let sysChroot = 161

    static func restore(_ image: ProcessImage, container: Bool, injector: Injector, scratch: ScratchArea) throws {
        guard let root = ChrootPlan.target(root: image.root, container: container) else { return }
        var st = stat()
        guard stat(root, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw FerryError("cannot restore process \(image.pid) (\(image.comm)): its root directory \(root) (chroot) is not a directory on this host; create it and retry")
        }
        let path = try ProcessMisc.put(root, injector: injector, scratch: scratch)
        try injector.call(sysChroot, [path], "chroot(\(root)) for process \(image.pid)")
    }
}
#endif
