using System.Diagnostics;

namespace SharpTune.Tests.Support;

public sealed record CliResult(int ExitCode, string StdOut, string StdErr)
{
    public string All => StdOut + StdErr;
}

/// <summary>Runs the built sharptune CLI in a child process, as a user would.</summary>
public static class CliRunner
{
    private static readonly string CliDll = FindCliDll();

    public static CliResult Run(params string[] args) => Run(TimeSpan.FromMinutes(10), args);

    public static CliResult Run(TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = RepoPaths.Root,
        };
        start.ArgumentList.Add(CliDll);
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        start.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"sharptune {string.Join(' ', args)} did not finish in {timeout}");
        }
        return new CliResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    private static string FindCliDll()
    {
        // The test project references the CLI, so it is built with the same configuration next to its sources.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var path = Path.Combine(RepoPaths.Root, "src", "SharpTune.Cli", "bin", configuration, "net10.0", "SharpTune.Cli.dll");
        if (!File.Exists(path))
            throw new FileNotFoundException("the CLI is not built", path);
        return path;
    }
}
