namespace SharpTune.StagedPipeline;

/// <summary>
/// Peak resident memory of this process over a span of work. On Linux the kernel's high-water mark (VmHWM) is reset
/// through /proc/self/clear_refs, so the peak belongs to that span alone; elsewhere the process-wide peak working set
/// is the best available (it never goes down, so later spans include earlier peaks).
/// </summary>
public sealed class PeakMemoryScope
{
    private const string Status = "/proc/self/status";
    private readonly long _baseline;

    public static bool IsPrecise { get; } = File.Exists("/proc/self/clear_refs") && File.Exists(Status);

    public static string Method => IsPrecise
        ? "increase of the process's peak resident set (Linux VmHWM, reset per variant) over its size before loading"
        : "process peak working set (not reset between variants)";

    public PeakMemoryScope()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        if (IsPrecise)
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            _baseline = ReadStatusKiB("VmRSS") * 1024;
        }
    }

    /// <summary>Peak bytes added since the scope began.</summary>
    public long PeakBytes()
    {
        if (!IsPrecise)
            return System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64;
        return Math.Max(0, ReadStatusKiB("VmHWM") * 1024 - _baseline);
    }

    private static long ReadStatusKiB(string key)
    {
        foreach (var line in File.ReadLines(Status))
            if (line.StartsWith(key + ":", StringComparison.Ordinal))
                return long.Parse(line[(key.Length + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        throw new InvalidDataException($"{Status}: no {key} line");
    }
}
