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

    public static CliResult Run(params string[] args) => Run(TimeSpan.FromMinutes(10), args);

    public static CliResult Run(TimeSpan timeout, params string[] args)
    {
        using var process = Start(args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // The high-water mark of resident memory, sampled until exit (Linux keeps it in /proc/PID/status as VmHWM).
        long peak = 0;
        var deadline = DateTime.UtcNow + timeout;
        while (!process.WaitForExit(25))
        {
            peak = Math.Max(peak, PeakResidentBytes(process.Id));
            if (DateTime.UtcNow > deadline)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"sharptune {string.Join(' ', args)} did not finish in {timeout}");
            }
        }
        return new CliResult(process.ExitCode, stdout.Result, stderr.Result) { PeakMemoryBytes = peak };
    }

    /// <summary>Starts the CLI without waiting (for tests that interrupt it); the caller reads or drains its output.</summary>
    public static Process Start(params string[] args)
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
