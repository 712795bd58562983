namespace SharpTune.Cli.Infrastructure;

/// <summary>Reports on the calling thread, so progress bars see updates in order (Progress&lt;T&gt; would post them to
/// the thread pool and reorder them).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
