using System.Text;
using System.Text.RegularExpressions;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Hardening;

/// <summary>One hostile input: <see cref="Setup"/> writes the files into a fresh folder and returns the CLI arguments
/// (writing to the output folder it is given); the error line must contain every fragment of <see cref="Expected"/>.</summary>
public sealed record MalformedCase(string Name, Func<string, string, string[]> Setup, params string[] Expected)
{
    public override string ToString() => Name;
}

/// <summary>
/// What every malformed input must end with, run through the CLI as a user would: a non-zero exit, exactly one line on
/// standard error (the error, naming the file and, where it applies, the line or tensor), no .NET or native stack text
/// (that needs -v), resident memory bounded, and nothing left in the output folder.
/// </summary>
public abstract class MalformedInputSuite : IDisposable
{
    /// <summary>The CLI with TorchSharp loaded takes a few hundred MB; a case that allocates for its input goes far beyond.</summary>
    private const long MemoryBound = 2L << 30;

    private static readonly Regex StackOrNative = new(
        @"^\s+at [\w.<>`]+|\w+Exception\b|c10::|libtorch|THSTensor|\.cpp:\d|Arithmetic operation|Object reference not set|Index was outside",
        RegexOptions.Multiline);

    private readonly string _root = RepoPaths.NewTempDirectory("sharptune-malformed");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    protected void Check(MalformedCase malformed)
    {
        var folder = Path.Combine(_root, malformed.Name);
        Directory.CreateDirectory(folder);
        var output = Path.Combine(folder, "out");
        var args = malformed.Setup(folder, output);
        var result = CliRunner.Run(TimeSpan.FromMinutes(3), args);

        var context = $"sharptune {string.Join(' ', args.Select(Path.GetFileName))}\n--- exit {result.ExitCode}\n{result.All}";
        Assert.True(result.ExitCode != 0, "expected a failure: " + context);
        var lines = result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length == 1 && lines[0].StartsWith("error: ", StringComparison.Ordinal), "expected one error line: " + context);
        foreach (var fragment in malformed.Expected)
            Assert.True(lines[0].Contains(fragment, StringComparison.Ordinal), $"the error should contain '{fragment}': " + context);
        Assert.False(StackOrNative.IsMatch(result.All), "stack or native text without -v: " + context);
        Assert.True(result.PeakMemoryBytes < MemoryBound, $"peak memory {result.PeakMemoryBytes >> 20} MiB: " + context);
        Assert.True(!Directory.Exists(output) || !Directory.EnumerateFileSystemEntries(output).Any(), "files left in the output: " + context);
        var leftovers = Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories)
            .Where(p => Path.GetFileName(p).EndsWith(".tmp", StringComparison.Ordinal)).ToList();
        Assert.True(leftovers.Count == 0, $"temporary files left: {string.Join(", ", leftovers)}\n" + context);
    }

    /// <summary>A safetensors file from a header (JSON text, written as is) and a data section.</summary>
    protected static byte[] SafeTensors(string header, int dataBytes = 0, long? headerLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), headerLength ?? json.Length);
        json.CopyTo(bytes, 8);
        return bytes;
    }

    protected static string Write(string folder, string name, string text)
    {
        var path = Path.Combine(folder, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    protected static string Write(string folder, string name, byte[] bytes)
    {
        var path = Path.Combine(folder, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static TheoryData<string> Names(IEnumerable<MalformedCase> cases)
    {
        var data = new TheoryData<string>();
        foreach (var c in cases)
            data.Add(c.Name);
        return data;
    }
}
