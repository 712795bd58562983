using Spectre.Console;

namespace SharpTune.Cli.Infrastructure;

/// <summary>Progress bars for long work. Interactive terminals get a live Spectre.Console bar; redirected
/// output (CI, pipes) gets no animation, only the final lines the command prints itself.</summary>
public static class CliProgress
{
    /// <summary>Runs <paramref name="work"/> with one task bar of <paramref name="total"/> units; the work reports
    /// progress through the callback (units done so far, optional status such as loss or lr).</summary>
    public static T Run<T>(string description, double total, Func<Action<double, string?>, T> work)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
            return work((_, _) => { });
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape(description), maxValue: Math.Max(total, 1));
                result = work((done, status) =>
                {
                    task.Value = Math.Min(done, task.MaxValue);
                    if (status is not null)
                        task.Description = Markup.Escape($"{description} {status}");
                });
                task.Value = task.MaxValue;
            });
        return result;
    }

    public static void Run(string description, double total, Action<Action<double, string?>> work) =>
        Run<object?>(description, total, report => { work(report); return null; });
}
