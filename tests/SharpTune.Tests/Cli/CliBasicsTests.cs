using SharpTune.Tests.Support;

namespace SharpTune.Tests.Cli;

public class CliBasicsTests
{
    [Fact]
    public void InfoShowsLibTorchAndAWorkingCpu()
    {
        var result = CliRunner.Run("info", "--device", "cpu");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("2.10", result.StdOut);
        Assert.Contains("self-check", result.StdOut);
        Assert.Contains("cpu", result.StdOut);
    }

    [Fact]
    public void HelpListsCommandsWithDescriptions()
    {
        var result = CliRunner.Run("--help");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("info", result.StdOut);
        Assert.Contains("--device", result.StdOut);
    }

    [Fact]
    public void BadFlagIsAUsageErrorWithoutStackTrace()
    {
        var result = CliRunner.Run("info", "--no-such-flag");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--no-such-flag", result.StdErr);
        Assert.DoesNotContain("   at ", result.All);
    }

    [Fact]
    public void UnavailableDeviceIsAOneLineError()
    {
        var result = CliRunner.Run("info", "--device", "cuda");
        if (result.ExitCode == 0)
            return; // a CUDA machine: nothing to refuse
        Assert.Equal(2, result.ExitCode);
        Assert.Single(result.StdErr.Trim().Split('\n'));
        Assert.Contains("CUDA", result.StdErr);
    }
}
