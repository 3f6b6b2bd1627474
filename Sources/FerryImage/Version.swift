/// ferry's version, recorded in every image it writes.
public enum FerryVersion {
    public static let string = "0.1.0"
}
