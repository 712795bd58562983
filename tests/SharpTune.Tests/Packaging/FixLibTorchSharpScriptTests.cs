using SharpTune.Tests.Support;

namespace SharpTune.Tests.Packaging;

/// <summary>build/native/fix-libtorchsharp.sh (the SharpTune package's buildTransitive script) on pristine copies of
/// TorchSharp's libLibTorchSharp.so: it used to die of SIGPIPE at random (readelf piped into grep -q / awk exit).</summary>
public class FixLibTorchSharpScriptTests
{
    private static string Script => Path.Combine(RepoPaths.Root, "build", "native", "fix-libtorchsharp.sh");
    private static string NativeDirectory => Path.Combine(RepoPaths.Root, "build", "native");

    private static string PristineLibrary()
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } folder
            ? folder
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    }

    [Fact]
    public void PatchesAFreshCopyTwentyTimesInARow()
    {
        if (!OperatingSystem.IsLinux())
            return; // the script patches ELF files only
        var pristine = PristineLibrary();
        Assert.True(File.Exists(pristine), $"TorchSharp's native library is not in the NuGet cache: {pristine}");
        var work = RepoPaths.NewTempDirectory("fix-libtorchsharp");
        try
        {
            for (var run = 1; run <= 20; run++)
            {
                var library = Path.Combine(work, "libLibTorchSharp.so");
                File.Copy(pristine, library, overwrite: true);
                // --always: patch even where the system libstdc++ is new enough, so every run does the whole job.
                ProcessRunner.Succeed("bash", [Script, "--always", library, NativeDirectory], work, TimeSpan.FromMinutes(1));
                var dynamicSection = ProcessRunner.Succeed("readelf", ["-d", library], work, TimeSpan.FromMinutes(1));
                Assert.Contains("[libSharpTuneIosBaseShim.so]", dynamicSection);
                var versions = ProcessRunner.Succeed("readelf", ["-V", library], work, TimeSpan.FromMinutes(1));
                Assert.Contains("Name: GLIBCXX_3.4.32  Flags: WEAK", versions);
                Assert.True(File.Exists(Path.Combine(work, "libSharpTuneIosBaseShim.so")), $"run {run}: no shim");
                // A second run on the patched copy changes nothing.
                var before = File.ReadAllBytes(library);
                ProcessRunner.Succeed("bash", [Script, "--always", library, NativeDirectory], work, TimeSpan.FromMinutes(1));
                Assert.Equal(before, File.ReadAllBytes(library));
            }
            Assert.Empty(Directory.GetFiles(work, ".*"));
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}
