namespace SharpTune.Tests.Support;

/// <summary>Locates the repository's own copies of fixtures, models and data (tests never read ../shared).</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Fixtures => Path.Combine(Root, "tests", "fixtures");
    public static string Models => Path.Combine(Root, "models");
    public static string Data => Path.Combine(Root, "data");

    public static string Fixture(params string[] parts) => Path.Combine([Fixtures, .. parts]);

    /// <summary>A fresh empty directory under the system temp folder, removed by the caller or the OS.</summary>
    public static string NewTempDirectory(string prefix = "sharptune-test")
    {
        var path = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
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
