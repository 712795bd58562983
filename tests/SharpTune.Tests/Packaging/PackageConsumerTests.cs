using System.Text.RegularExpressions;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Packaging;

/// <summary>
/// What a new user does: pack the repository into a local feed, create a console app in a temporary folder outside
/// the repository, add SharpTune from the feed (it brings the CPU libtorch by default), build and run it; install the sharptune tool
/// from the feed and run <c>sharptune info</c>. The consumer restores into a private packages folder that falls back
/// on the machine's NuGet cache, so the freshly packed SharpTune packages are always the ones used and TorchSharp is
/// not downloaded again.
/// </summary>
public class PackageConsumerTests
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(10);

    [Fact]
    public void PackedPackagesWorkInAFreshConsoleAppAndAsATool()
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var work = RepoPaths.NewTempDirectory("sharptune-consumer");
        try
        {
            foreach (var directory in AncestorsOf(work))
                foreach (var file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
                    Assert.False(File.Exists(Path.Combine(directory, file)), $"{Path.Combine(directory, file)} would leak into the consumer app");

            var feed = Path.Combine(work, "feed");
            var environment = CleanEnvironment();
            // Packing builds; in the checkout that would rewrite outputs other tests run at the same moment (the CLI's
            // patched native library among them), so a copy of the sources is packed, as a fresh clone would be.
            var source = Path.Combine(work, "source");
            CopySources(source);
            ProcessRunner.Succeed(dotnet, ["new", "sln", "-n", "SharpTune", "-o", source], source, Long, environment);
            ProcessRunner.Succeed(dotnet, ["sln", "add", .. Directory.GetFiles(Path.Combine(source, "src"), "*.csproj", SearchOption.AllDirectories)], source, Long, environment);
            ProcessRunner.Succeed(dotnet, ["pack", "-c", "Release", "-o", feed, "-nologo"], source, Long, environment);
            foreach (var package in new[] { "SharpTune.Tokenizers", "SharpTune", "SharpTune.Workflows", "SharpTune.Cli", "SharpTune.Cli.linux-x64" })
                Assert.True(File.Exists(Path.Combine(feed, $"{package}.0.1.0.nupkg")), $"{package} was not packed: {string.Join(", ", Directory.GetFiles(feed).Select(Path.GetFileName))}");
            Assert.True(new FileInfo(Path.Combine(feed, "SharpTune.Cli.linux-x64.0.1.0.nupkg")).Length < 250L << 20, "the tool package must stay under nuget.org's 250 MB");

            var machineCache = Regex.Match(ProcessRunner.Succeed(dotnet, ["nuget", "locals", "global-packages", "--list"], work, Long, environment),
                @"global-packages:\s*(\S.*)").Groups[1].Value.Trim();
            var config = Path.Combine(work, "nuget.config");
            File.WriteAllText(config, $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources><add key="sharptune-local" value="{feed}" /></packageSources>
                  <fallbackPackageFolders><add key="machine" value="{machineCache}" /></fallbackPackageFolders>
                </configuration>
                """);
            environment["NUGET_PACKAGES"] = Path.Combine(work, "packages");

            var app = Path.Combine(work, "app");
            ProcessRunner.Succeed(dotnet, ["new", "console", "-o", app, "-n", "ConsumerApp", "--no-restore"], work, Long, environment);
            File.Copy(Path.Combine(AppContext.BaseDirectory, "Packaging", "ConsumerApp", "Program.cs.txt"), Path.Combine(app, "Program.cs"), overwrite: true);
            ProcessRunner.Succeed(dotnet, ["add", "package", "SharpTune", "--version", "0.1.0", "--no-restore"], app, Long, environment);
            // One platform's libtorch in bin/, as the README recommends.
            ProcessRunner.Succeed(dotnet, ["build", "-c", "Release", "-p:RuntimeIdentifier=linux-x64", "-nologo"], app, Long, environment);
            var output = ProcessRunner.Succeed(dotnet, [Path.Combine(app, "bin", "Release", "net10.0", "linux-x64", "ConsumerApp.dll"),
                Path.Combine(RepoPaths.Models, "mini-bert")], work, Long, environment);
            var top = Regex.Match(output, @"top token: (\S+)");
            Assert.True(top.Success, output);
            Assert.Contains("LoRA fine-tune: 4 steps", output);

            var tools = Path.Combine(work, "tools");
            ProcessRunner.Succeed(dotnet, ["tool", "install", "SharpTune.Cli", "--version", "0.1.0", "--add-source", feed, "--configfile", config, "--tool-path", tools],
                work, Long, environment);
            var info = ProcessRunner.Succeed(Path.Combine(tools, "sharptune"), ["info"], work, Long, environment);
            Assert.Contains("CPU-only", info);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>What packing reads: the sources under src/ and build/ (no build outputs) and the root's build files.</summary>
    private static void CopySources(string destination)
    {
        foreach (var folder in new[] { "src", "build" })
        {
            var root = Path.Combine(RepoPaths.Root, folder);
            foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(RepoPaths.Root, file);
                if (relative.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj"))
                    continue;
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(destination, relative))!);
                File.Copy(file, Path.Combine(destination, relative));
            }
        }
        foreach (var file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props", "global.json", "README.md", "LICENSE" })
            File.Copy(Path.Combine(RepoPaths.Root, file), Path.Combine(destination, file));
    }

    private static IEnumerable<string> AncestorsOf(string path)
    {
        for (var directory = new DirectoryInfo(path); directory is not null; directory = directory.Parent)
            yield return directory.FullName;
    }

    /// <summary>The test host's environment less what MSBuild and the test run put there for themselves.</summary>
    private static Dictionary<string, string?> CleanEnvironment()
    {
        var environment = new Dictionary<string, string?> { ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1", ["NO_COLOR"] = "1" };
        foreach (System.Collections.DictionaryEntry variable in Environment.GetEnvironmentVariables())
        {
            var name = (string)variable.Key;
            if (name.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || name.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase))
                environment[name] = null;
        }
        return environment;
    }
}
