using System.Runtime.InteropServices;
using System.Text;

namespace SharpTune.IO;

/// <summary>
/// The one way SharpTune writes output files, so that readers never see half a file: write a temporary sibling, then
/// rename it over the destination. <c>-</c> (<see cref="StandardOutput"/>) means standard output. A destination that
/// exists but is not a regular file (a device such as <c>/dev/null</c>, a terminal or a pipe, or a link to one such as
/// <c>/dev/stdout</c>) is written through directly and never renamed over; a link to a regular file stays a link and
/// its target is replaced; a directory, or a link to nothing, is refused.
/// </summary>
public static class AtomicFile
{
    /// <summary>The path that means standard output.</summary>
    public const string StandardOutput = "-";

    private static readonly UTF8Encoding Utf8NoBom = new(false);

    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (path == StandardOutput)
        {
            using var stdout = Console.OpenStandardOutput();
            write(stdout);
            return;
        }
        var (target, direct) = Resolve(Path.GetFullPath(path));
        if (direct)
        {
            using var stream = new FileStream(target, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1 << 16);
            write(stream);
            return;
        }
        var directory = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(directory);
        var temporary = Path.Combine(directory, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
                write(stream);
            File.Move(temporary, target, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, Utf8NoBom, leaveOpen: true);
            writer.Write(text);
        });

    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, stream => stream.Write(bytes));

    /// <summary>Whether <paramref name="path"/> is written through directly (standard output, a device, a pipe, or a
    /// link to one) rather than replaced as a file.</summary>
    public static bool IsStream(string path) => path == StandardOutput || Resolve(Path.GetFullPath(path)).Direct;

    /// <summary>The path to write (links followed to their final target) and whether to write through it directly.</summary>
    private static (string Path, bool Direct) Resolve(string full)
    {
        var type = FileType(full);
        if (new FileInfo(full).LinkTarget is { } link)
        {
            if (type == 0)
                throw new IOException($"{full} is a link to a missing target ({link}); refusing to replace the link");
            // A link to a regular file stays a link; /dev/stdout (via /proc/self/fd/1 to "pipe:[123]") is written through.
            if (type == RegularFile)
                full = new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)!.FullName;
        }
        return type switch
        {
            0 or RegularFile => (full, false),
            DirectoryType => throw new IOException($"{full} is a directory; expected a file to write"),
            _ => (full, true),
        };
    }

    private const int TypeMask = 0xF000;
    private const int RegularFile = 0x8000;
    private const int DirectoryType = 0x4000;

    /// <summary>The POSIX file type bits of what <paramref name="path"/> leads to (links followed); 0 when it does not
    /// exist. .NET exposes no file type beyond directory, so this asks the runtime's own native shim, whose status
    /// record begins with the flags and the mode (as <c>stat</c>'s <c>st_mode</c>, with the type bits) on every Unix.</summary>
    private static unsafe int FileType(string path)
    {
        if (OperatingSystem.IsWindows())
            return File.Exists(path) ? RegularFile : Directory.Exists(path) ? DirectoryType : 0;
        var name = Encoding.UTF8.GetBytes(path + "\0");
        var status = stackalloc byte[512];
        fixed (byte* pointer = name)
            if (SystemNativeStat(pointer, status) != 0)
                return 0;
        return *(int*)(status + 4) & TypeMask;
    }

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat")]
    private static extern unsafe int SystemNativeStat(byte* path, byte* status);
}
