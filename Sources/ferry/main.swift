import ArgumentParser
import FerryImage

struct Ferry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Checkpoint, restore and live-migrate Linux-ABI processes between Linux and FreeBSD.",
        version: FerryVersion.string,
        subcommands: [ContainerCommand.self])
}

Ferry.main()
