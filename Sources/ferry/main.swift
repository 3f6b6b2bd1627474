import ArgumentParser
import FerryImage
#if os(Linux)
import FerryLinux
#endif

struct Ferry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Checkpoint, restore and live-migrate Linux-ABI processes between Linux and FreeBSD.",
        version: FerryVersion.string,
        subcommands: [InspectCommand.self, ContainerCommand.self] + Ferry.platformCommands)
}

extension Ferry {
    #if os(Linux)
    static let platformCommands: [ParsableCommand.Type] = [CheckpointCommand.self, RestoreCommand.self, CheckCommand.self, ServeCommand.self, MigrateCommand.self, PidnsInitCommand.self, RepairGuardCommand.self, ReleaseCommand.self]
    #else
    static let platformCommands: [ParsableCommand.Type] = []
    #endif
}

#if os(Linux)
Allocator.reuseLargeBuffers()
#endif
Ferry.main()
