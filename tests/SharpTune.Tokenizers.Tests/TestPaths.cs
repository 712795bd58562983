namespace SharpTune.Tokenizers.Tests;

/// <summary>The repository's own copies of fixtures and models (tests never read ../shared).</summary>
internal static class TestPaths
{
    public static string Root { get; } = FindRoot();

    public static string Fixture(params string[] parts) => Path.Combine([Root, "tests", "fixtures", .. parts]);

    public static string Repo(params string[] parts) => Path.Combine([Root, .. parts]);

    public static string NewTempDirectory()
    {
        var path = Path.Combine(Path.GetTempPath(), $"sharptune-tok-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SharpTune.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"SharpTune.sln not found above {AppContext.BaseDirectory}");
    }
}
