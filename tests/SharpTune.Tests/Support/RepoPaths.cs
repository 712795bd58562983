using SharpTune.Tests.Shared;

namespace SharpTune.Tests.Support;

/// <summary>Locates the repository's own copies of fixtures, models and data (tests never read ../shared).</summary>
public static class RepoPaths
{
    public static string Root => TestDirectories.Root;

    public static string Fixtures => Path.Combine(Root, "tests", "fixtures");
    public static string Models => Path.Combine(Root, "models");
    public static string Data => Path.Combine(Root, "data");

    public static string Fixture(params string[] parts) => Path.Combine([Fixtures, .. parts]);

    /// <summary>A fresh empty directory under the system temp folder, removed by the caller or the OS.</summary>
    public static string NewTempDirectory(string prefix = "sharptune-test") => TestDirectories.NewTempDirectory(prefix);
}
