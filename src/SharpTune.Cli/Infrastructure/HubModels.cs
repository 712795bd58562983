using System.Globalization;
using Microsoft.Extensions.Logging;
using SharpTune.Hub;

namespace SharpTune.Cli.Infrastructure;

/// <summary>What every --model, --tokenizer and --adapter accepts: a local path (always preferred) or a Hub id
/// (<c>org/name[@revision]</c>) found in the Hugging Face cache or downloaded with a progress bar.</summary>
public static class HubModels
{
    /// <summary>The environment's Hub settings, with warnings (retries, falling back to the cache) on standard error.</summary>
    public static HubOptions Options() => HubOptions.FromEnvironment() with { Logger = WarningLogger.Instance };

    public static string Resolve(string value, HubFileSelection? files = null, HubOptions? options = null)
    {
        if (!PretrainedPath.IsHubId(value))
            return value;
        options ??= Options();
        return CliProgress.Run(RepoReference.Parse(value).ToString(), 1, report =>
            PretrainedPath.Resolve(value, files, options, new SyncProgress<HubDownloadProgress>(p => report(Fraction(p), Status(p)))));
    }

    public static string? ResolveOptional(string? value, HubFileSelection? files = null) => value is null ? null : Resolve(value, files);

    /// <summary>The share of the download done, counting each file equally (sizes are known only as each file starts).</summary>
    internal static double Fraction(HubDownloadProgress p) =>
        (p.FileIndex + (p.FileBytesTotal > 0 ? Math.Min(1, (double)p.FileBytesDone / p.FileBytesTotal) : 0)) / Math.Max(1, p.FileCount);

    internal static string Status(HubDownloadProgress p) =>
        string.Create(CultureInfo.InvariantCulture, $"{p.File} ({p.FileIndex + 1}/{p.FileCount}, {p.FileBytesDone / 1048576.0:F1} MiB)");

    private sealed class WarningLogger : ILogger
    {
        public static readonly WarningLogger Instance = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
                Console.Error.WriteLine($"warning: {formatter(state, exception)}");
        }
    }
}
