using SharpTune.IO;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.IO;

public sealed class AtomicDirectoryTests : IDisposable
{
    private readonly string _root = RepoPaths.NewTempDirectory();

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void FailureLeavesNothingBehindAndKeepsTheOldDirectory()
    {
        var target = Path.Combine(_root, "model");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "old.txt"), "old");
        Assert.Throws<InvalidOperationException>(() => AtomicDirectory.Write(target, temporary =>
        {
            File.WriteAllText(Path.Combine(temporary, "half.txt"), "half");
            throw new InvalidOperationException("disk full");
        }, overwrite: true));
        Assert.Equal(["old.txt"], Directory.GetFiles(target).Select(Path.GetFileName));
        Assert.Equal(["model"], Directory.GetFileSystemEntries(_root).Select(Path.GetFileName));
    }

    [Fact]
    public void OverwriteReplacesTheWholeDirectoryAndRefusesWithoutIt()
    {
        var target = Path.Combine(_root, "model");
        AtomicDirectory.Write(target, temporary => File.WriteAllText(Path.Combine(temporary, "a.txt"), "a"));
        Assert.Throws<IOException>(() => AtomicDirectory.Write(target, _ => { }));
        AtomicDirectory.Write(target, temporary => File.WriteAllText(Path.Combine(temporary, "b.txt"), "b"), overwrite: true);
        Assert.Equal(["b.txt"], Directory.GetFiles(target).Select(Path.GetFileName));
        Assert.Equal(["model"], Directory.GetFileSystemEntries(_root).Select(Path.GetFileName));
    }
}
