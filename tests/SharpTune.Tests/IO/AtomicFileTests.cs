using System.Text.Json;
using SharpTune.IO;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.IO;

public sealed class AtomicFileTests : IDisposable
{
    private readonly string _root = RepoPaths.NewTempDirectory();

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void ReplacesARegularFileAndLeavesNoTemporaryBehind()
    {
        var path = Path.Combine(_root, "out.txt");
        File.WriteAllText(path, "old");
        AtomicFile.WriteAllText(path, "new");
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.WriteByte((byte)'x');
            throw new InvalidOperationException("disk full");
        }));
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal(["out.txt"], Directory.GetFileSystemEntries(_root).Select(Path.GetFileName));
    }

    [Fact]
    public void ALinkToARegularFileStaysALinkAndItsTargetIsReplaced()
    {
        var target = Path.Combine(_root, "target.txt");
        File.WriteAllText(target, "old");
        var link = Path.Combine(_root, "link.txt");
        File.CreateSymbolicLink(link, target);
        AtomicFile.WriteAllText(link, "new");
        Assert.Equal(target, new FileInfo(link).LinkTarget);
        Assert.Equal("new", File.ReadAllText(target));
    }

    [Fact]
    public void ADeviceOrALinkToOneIsWrittenThroughNeverRenamedOver()
    {
        if (OperatingSystem.IsWindows())
            return;
        var link = Path.Combine(_root, "null-link");
        File.CreateSymbolicLink(link, "/dev/null");
        AtomicFile.WriteAllText(link, "discarded");
        Assert.Equal("/dev/null", new FileInfo(link).LinkTarget);
        Assert.True(AtomicFile.IsStream(link));
        AtomicFile.WriteAllText("/dev/null", "discarded");
        Assert.True(AtomicFile.IsStream("/dev/null"));
        Assert.False(AtomicFile.IsStream(Path.Combine(_root, "new.txt")));
        Assert.Equal(["null-link"], Directory.GetFileSystemEntries(_root).Select(Path.GetFileName));
    }

    [Fact]
    public void ADirectoryOrADanglingLinkIsRefusedClearly()
    {
        var folder = Path.Combine(_root, "folder");
        Directory.CreateDirectory(folder);
        Assert.Contains("is a directory", Assert.Throws<IOException>(() => AtomicFile.WriteAllText(folder, "x")).Message);
        var dangling = Path.Combine(_root, "dangling");
        File.CreateSymbolicLink(dangling, Path.Combine(_root, "missing"));
        Assert.Contains("missing target", Assert.Throws<IOException>(() => AtomicFile.WriteAllText(dangling, "x")).Message);
        Assert.False(File.Exists(Path.Combine(_root, "missing")));
    }

    [Fact]
    public void CliOutputDashIsStandardOutputAndALinkToStdoutSurvives()
    {
        var input = Path.Combine(_root, "in.jsonl");
        File.WriteAllLines(input, [JsonSerializer.Serialize(new { text = "hello world" })]);
        var tokenizer = RepoPaths.Fixture("tokenizers", "bert-wordpiece.tokenizer.json");

        var dash = CliRunner.Run("tokenize", "--tokenizer", tokenizer, "--input", input, "--output", "-");
        Assert.True(dash.ExitCode == 0, dash.All);
        Assert.Contains("\"ids\"", JsonDocument.Parse(dash.StdOut.Trim()).RootElement.GetRawText());
        Assert.False(File.Exists(Path.Combine(RepoPaths.Root, "-")));

        var link = Path.Combine(_root, "stdout");
        File.CreateSymbolicLink(link, "/dev/stdout");
        var linked = CliRunner.Run("tokenize", "--tokenizer", tokenizer, "--input", input, "--output", link);
        Assert.True(linked.ExitCode == 0, linked.All);
        Assert.Equal("/dev/stdout", new FileInfo(link).LinkTarget);
        Assert.StartsWith("{\"ids\"", linked.StdOut);
    }
}
