using Microsoft.Extensions.Logging;
using SharpTune.Tests.Support;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

[Collection(TrainerCollection.Name)]
public class TrainerCancellationTests
{
    [Fact]
    public void CancellingStopsBeforeTheNextStepAndTheLoggerHearsTheStart()
    {
        var dir = RepoPaths.NewTempDirectory();
        using var model = new TinyClassifier();
        using var cancellation = new CancellationTokenSource();
        var logger = new ListLogger();
        var trainer = new Trainer(model, TrainerTests.Args(dir), TinyClassifier.Data(64, 1)) { Logger = logger };
        trainer.Progress = new SynchronousProgress<TrainingProgress>(p =>
        {
            if (p.Step == 3)
                cancellation.Cancel();
        });

        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Train(cancellationToken: cancellation.Token));
        Assert.Equal(3, trainer.State.GlobalStep);
        Assert.Contains(logger.Messages, m => m.StartsWith("Training 64 examples for 32 optimizer steps", StringComparison.Ordinal));
        Assert.ThrowsAny<OperationCanceledException>(() => new Trainer(model, TrainerTests.Args(dir), TinyClassifier.Data(8, 1)).Train(cancellationToken: cancellation.Token));
        Directory.Delete(dir, true);
    }

    private sealed class ListLogger : ILogger
    {
        public List<string> Messages { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Messages.Add(formatter(state, exception));
    }
}
