using System.Diagnostics;

namespace SharpTune.Tests.Support;

public sealed record CliResult(int ExitCode, string StdOut, string StdErr)
{
    public string All => StdOut + StdErr;

    /// <summary>The process's peak resident memory as sampled while it ran (0 where the OS does not tell).</summary>
    public long PeakMemoryBytes { get; init; }
}

/// <summary>Runs the built sharptune CLI in a child process, as a user would.</summary>
public static class CliRunner
{
    private static readonly string CliDll = FindCliDll();
    private static readonly IReadOnlyDictionary<string, string?> NoEnvironment = new Dictionary<string, string?>();

    public static CliResult Run(params string[] args) => Run(TimeSpan.FromMinutes(10), args);

    public static CliResult Run(TimeSpan timeout, params string[] args) => Run(timeout, NoEnvironment, args);

    /// <summary>Runs with extra environment variables (a null value removes the variable).</summary>
    public static CliResult Run(TimeSpan timeout, IReadOnlyDictionary<string, string?> environment, params string[] args) =>
        RunAsync(timeout, environment, args).GetAwaiter().GetResult();

    /// <summary>Starts the CLI and completes when it exits (several can run at once).</summary>
    public static async Task<CliResult> RunAsync(TimeSpan timeout, IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        using var process = Start(environment, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // The high-water mark of resident memory, sampled until exit (Linux keeps it in /proc/PID/status as VmHWM).
        long peak = 0;
        var deadline = DateTime.UtcNow + timeout;
        while (!process.HasExited)
        {
            peak = Math.Max(peak, PeakResidentBytes(process.Id));
            if (DateTime.UtcNow > deadline)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"sharptune {string.Join(' ', args)} did not finish in {timeout}");
            }
            await Task.WhenAny(process.WaitForExitAsync(), Task.Delay(25));
        }
        await process.WaitForExitAsync();
        return new CliResult(process.ExitCode, await stdout, await stderr) { PeakMemoryBytes = peak };
    }

    /// <summary>Starts the CLI without waiting (for tests that interrupt it); the caller reads or drains its output.</summary>
    public static Process Start(params string[] args) => Start(NoEnvironment, args);

    public static Process Start(IReadOnlyDictionary<string, string?> environment, params string[] args)
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
        return Process.Start(start)!;
    }

    private static long PeakResidentBytes(int processId)
    {
        try
        {
            var line = File.ReadLines($"/proc/{processId}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }
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
