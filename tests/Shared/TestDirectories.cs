namespace SharpTune.Tests.Shared;

/// <summary>The checkout's root and fresh temporary folders, for both test projects (each links this file).</summary>
internal static class TestDirectories
{
    public static string Root { get; } = FindRoot();

    /// <summary>A fresh empty directory under the system temp folder, removed by the caller or the OS.</summary>
    public static string NewTempDirectory(string prefix)
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
