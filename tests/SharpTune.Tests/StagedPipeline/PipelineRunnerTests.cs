using SharpTune.StagedPipeline;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.StagedPipeline;

public class PipelineRunnerTests
{
    /// <summary>A stage that writes one file derived from its input and the settings, and counts its runs.</summary>
    private sealed class FileStage(string name, string? input, Func<PipelineSettings, object> setting) : PipelineStage
    {
        public int Runs;
        public Action? During;
        public override string Name => name;
        public override string Folder => name + "-out";
        public override IReadOnlyList<string> Requires => input is null ? [] : [input];
        public override object?[] SettingsFingerprint(PipelineSettings settings) => [setting(settings)];

        public override IReadOnlyDictionary<string, object?>? Run(PipelineContext context, string workDirectory)
        {
            Runs++;
            var upstream = input is null ? "" : File.ReadAllText(Path.Combine(context.RequireOutputOf(input), "value.txt"));
            File.WriteAllText(Path.Combine(workDirectory, "value.txt"), upstream + $"{name}:{setting(context.Settings)};");
            During?.Invoke();
            return new Dictionary<string, object?> { ["runs"] = Runs };
        }
    }

    private static (PipelineRunner Runner, FileStage A, FileStage B, FileStage C) Build()
    {
        var a = new FileStage("a", null, s => s.TrainSamples);
        var b = new FileStage("b", "a", s => s.LoraR);
        var c = new FileStage("c", "b", s => s.MaxNewTokens);
        return (new PipelineRunner([a, b, c]), a, b, c);
    }

    private static PipelineContext Context(string output, PipelineSettings? settings = null) =>
        new() { Settings = settings ?? new PipelineSettings { Model = "m", Data = "d" }, OutputDirectory = output };

    [Fact]
    public void RunsInOrderThenSkipsCompletedStages()
    {
        var output = RepoPaths.NewTempDirectory();
        var (runner, a, b, c) = Build();
        var first = runner.Run(Context(output), runner.Select("all"));
        Assert.All(first, r => Assert.Equal(StageOutcome.Ran, r.Outcome));
        Assert.Equal("a:100;b:8;c:32;", File.ReadAllText(Path.Combine(output, "c-out", "value.txt")));
        var second = runner.Run(Context(output), runner.Select(null));
        Assert.All(second, r => Assert.Equal(StageOutcome.AlreadyDone, r.Outcome));
        Assert.Equal((1, 1, 1), (a.Runs, b.Runs, c.Runs));
        var state = File.ReadAllText(Path.Combine(output, PipelineRunner.StateFileName));
        Assert.Contains("\"seconds\"", state);
        Assert.Equal(100, PipelineRunner.LoadSettings(output)!.TrainSamples);
    }

    [Fact]
    public void ChangedSettingReRunsThatStageAndTheOnesAfter()
    {
        var output = RepoPaths.NewTempDirectory();
        var (runner, a, b, c) = Build();
        runner.Run(Context(output), runner.Stages);
        runner.Run(Context(output, new PipelineSettings { Model = "m", Data = "d", LoraR = 4 }), runner.Stages);
        Assert.Equal((1, 2, 2), (a.Runs, b.Runs, c.Runs));
        Assert.Equal("a:100;b:4;c:32;", File.ReadAllText(Path.Combine(output, "c-out", "value.txt")));
    }

    [Fact]
    public void AStageRunsAloneOnAnExistingOutputAndRefusesWithoutItsInput()
    {
        var output = RepoPaths.NewTempDirectory();
        var (runner, _, _, c) = Build();
        var error = Assert.Throws<ArgumentException>(() => runner.Run(Context(output), runner.Select("c")));
        Assert.Contains("stage 'c' needs the output of 'b'", error.Message);
        runner.Run(Context(output), runner.Select("a,b"));
        Assert.False(Directory.Exists(Path.Combine(output, "c-out")));
        var runs = runner.Run(Context(output), runner.Select("c"));
        Assert.Equal(StageOutcome.Ran, Assert.Single(runs).Outcome);
        Assert.Equal(1, c.Runs);
        Assert.Throws<ArgumentException>(() => runner.Select("a,nope"));
    }

    [Fact]
    public void AnInterruptedStageLeavesNoOutputAndIsRedoneOnTheNextRun()
    {
        var output = RepoPaths.NewTempDirectory();
        var (runner, a, b, c) = Build();
        b.During = () => throw new OperationCanceledException("killed");
        Assert.Throws<OperationCanceledException>(() => runner.Run(Context(output), runner.Stages));
        Assert.True(File.Exists(Path.Combine(output, "a-out", PipelineRunner.MarkerFileName)));
        Assert.False(Directory.Exists(Path.Combine(output, "b-out")));
        Assert.True(Directory.Exists(Path.Combine(output, "b-out.partial")));
        b.During = null;
        var runs = runner.Run(Context(output), runner.Stages);
        Assert.Equal([StageOutcome.AlreadyDone, StageOutcome.Ran, StageOutcome.Ran], runs.Select(r => r.Outcome));
        Assert.False(Directory.Exists(Path.Combine(output, "b-out.partial")));
        Assert.Equal((1, 2, 1), (a.Runs, b.Runs, c.Runs));
    }

    [Fact]
    public void AFolderWithoutMarkerCountsAsIncomplete()
    {
        var output = RepoPaths.NewTempDirectory();
        var (runner, a, _, _) = Build();
        runner.Run(Context(output), runner.Select("a"));
        // Killed between the rename and the marker: the folder is there, the marker is not.
        File.Delete(Path.Combine(output, "a-out", PipelineRunner.MarkerFileName));
        runner.Run(Context(output), runner.Select("a"));
        Assert.Equal(2, a.Runs);
    }
}
