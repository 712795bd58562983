using System.Diagnostics;
using System.Text.RegularExpressions;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.StagedPipeline;

/// <summary>Skips a test only when node is not installed (the S3 tests need s3rver, a node program).</summary>
public sealed class RequiresNodeFactAttribute : FactAttribute
{
    public RequiresNodeFactAttribute()
    {
        if (!S3rverServer.NodeAvailable)
            Skip = "node is not installed: the S3 export tests run the local S3 server s3rver (install node, then run scripts/setup.sh)";
    }
}

/// <summary>A real S3-compatible server (s3rver from tools/s3rver) on 127.0.0.1 and a free port, with its data in a
/// temporary folder; stopped on dispose.</summary>
public sealed partial class S3rverServer : IDisposable
{
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";

    private readonly Process _process;

    public static bool NodeAvailable { get; } = FindOnPath("node") is not null;

    public S3rverServer()
    {
        var script = Path.Combine(RepoPaths.Root, "tools", "s3rver", "node_modules", "s3rver", "bin", "s3rver.js");
        if (!File.Exists(script))
            throw new FileNotFoundException("s3rver is not installed: run scripts/setup.sh (npm ci in tools/s3rver)", script);
        var start = new ProcessStartInfo(FindOnPath("node")!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { script, "--address", "127.0.0.1", "--port", "0", "--directory", RepoPaths.NewTempDirectory("s3rver"), "--silent" })
            start.ArgumentList.Add(arg);
        _process = Process.Start(start)!;
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginErrorReadLine();
        var port = ReadPortAsync(_process.StandardOutput);
        if (!port.Wait(TimeSpan.FromSeconds(30)) || port.Result is not { } value)
        {
            Dispose();
            throw new InvalidOperationException("s3rver did not start (no 'listening on' line within 30 s)");
        }
        Endpoint = $"http://127.0.0.1:{value}";
    }

    public string Endpoint { get; }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }

    private static async Task<string?> ReadPortAsync(StreamReader output)
    {
        while (await output.ReadLineAsync() is { } line)
            if (ListeningLine().Match(line) is { Success: true } match)
                return match.Groups[1].Value;
        return null;
    }

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
        .Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);

    [GeneratedRegex(@"listening on [^:]+:(\d+)")]
    private static partial Regex ListeningLine();
}
