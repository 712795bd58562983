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

    public static CliResult Run(TimeSpan timeout, params string[] args) => Run(timeout, new Dictionary<string, string?>(), args);

    /// <summary>Runs with extra environment variables (a null value removes the variable).</summary>
    public static CliResult Run(TimeSpan timeout, IReadOnlyDictionary<string, string?> environment, params string[] args) =>
        RunAsync(timeout, environment, args).GetAwaiter().GetResult();

    /// <summary>Starts the CLI and completes when it exits (several can run at once).</summary>
    public static async Task<CliResult> RunAsync(TimeSpan timeout, IReadOnlyDictionary<string, string?> environment, params string[] args)
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
        foreach (var (name, value) in environment)
            if (value is null)
                start.Environment.Remove(name);
            else
                start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"sharptune {string.Join(' ', args)} did not finish in {timeout}");
        }
        return new CliResult(process.ExitCode, await stdout, await stderr);
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
