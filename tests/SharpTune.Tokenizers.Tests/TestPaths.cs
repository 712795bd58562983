using SharpTune.Tests.Shared;

namespace SharpTune.Tokenizers.Tests;

/// <summary>The repository's own copies of fixtures and models (tests never read ../shared).</summary>
internal static class TestPaths
{
    public static string Root => TestDirectories.Root;

    public static string Fixture(params string[] parts) => Path.Combine([Root, "tests", "fixtures", .. parts]);

    public static string Repo(params string[] parts) => Path.Combine([Root, .. parts]);

    public static string NewTempDirectory() => TestDirectories.NewTempDirectory("sharptune-tok");
}
