import Foundation

/// What the restore engine does on Linux to re-create a container from a
/// spec, as plain data: namespaces to create or join, the id maps and
/// hostname to set, and the cgroup files to write in order. Building it is
/// pure; executing it is the restore engine's job.
public struct LinuxApplyPlan: Codable, Equatable, Sendable {
    public var cgroupVersion: CgroupVersion
    /// Create these (clone3/unshare flags), in kind order.
    public var newNamespaces: [NamespaceKind]
    /// Join these existing namespaces (setns on the path).
    public var joinNamespaces: [Namespace]
    /// Contents for /proc/PID/uid_map and gid_map ("inside outside size" lines).
    public var uidMap: String?
    public var gidMap: String?
    public var hostname: String?
    public var domainname: String?
    public var rootPath: String?
    /// v2: controllers to enable in the parent's cgroup.subtree_control
    /// ("+cpu +memory …") before the writes. Empty for v1.
    public var controllers: [String]
    /// In order; v1 writes name their hierarchy, v2 writes go to the one directory.
    public var cgroupWrites: [CgroupWrite]
    /// Applied to each restored process with setrlimit/prlimit.
    public var rlimits: [RLimit]
    public var notes: [Untranslated]

    public init(_ spec: ContainerSpec, cgroup version: CgroupVersion) {
        var notes = NoteList()
        let iso = spec.isolation
        cgroupVersion = version
        newNamespaces = iso.namespaces.filter { $0.path == nil }.map(\.kind)
        joinNamespaces = iso.namespaces.filter { $0.path != nil }
        func mapText(_ maps: [IDMapping]) -> String? {
            maps.isEmpty ? nil : maps.map { "\($0.containerID) \($0.hostID) \($0.size)\n" }.joined()
        }
        uidMap = mapText(iso.uidMappings)
        gidMap = mapText(iso.gidMappings)
        hostname = iso.hostname
        domainname = iso.domainname
        rootPath = iso.rootPath
        rlimits = spec.limits.rlimits
        switch version {
        case .v1:
            cgroupWrites = CgroupV1.plan(spec.limits, notes: &notes)
            controllers = []
        case .v2:
            cgroupWrites = CgroupV2.plan(spec.limits, notes: &notes)
            controllers = CgroupV2.controllers(for: cgroupWrites)
        }
        if iso.rootReadonly {
            notes.approximate("root.readonly", true, "the restore engine must remount the root read-only; no cgroup write does it")
        }
        self.notes = notes.items
    }
}
