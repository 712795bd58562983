using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using SharpTune.IO;

namespace SharpTune.StagedPipeline;

/// <summary>
/// A zip backup of an export folder with SHA-256 checksums: every file's digest is listed in a
/// <c>SHA256SUMS</c> entry inside the zip (the format of <c>sha256sum</c>), and the zip's own digest in a
/// <c>.sha256</c> file beside it. Extracting verifies both, so a corrupted or tampered backup is refused.
/// </summary>
public static class ExportArchive
{
    public const string ChecksumsEntry = "SHA256SUMS";

    /// <summary>Zips every file under <paramref name="sourceDirectory"/> (hidden files excepted) into
    /// <paramref name="zipPath"/> atomically and writes <c>zipPath.sha256</c>. Returns the zip's digest.</summary>
    public static string Create(string sourceDirectory, string zipPath)
    {
        if (!Directory.Exists(sourceDirectory))
            throw new DirectoryNotFoundException($"nothing to archive: {sourceDirectory} does not exist");
        var root = Path.GetFullPath(sourceDirectory);
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(root, f).Replace('\\', '/'))
            .Where(f => !f.Split('/').Any(part => part.StartsWith('.')))
            .Order(StringComparer.Ordinal)
            .ToList();
        AtomicFile.Write(zipPath, stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            var sums = new StringBuilder();
            foreach (var file in files)
            {
                var entry = zip.CreateEntry(file, CompressionLevel.Optimal);
                using var source = File.OpenRead(Path.Combine(root, file));
                using var target = entry.Open();
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[1 << 20];
                int read;
                while ((read = source.Read(buffer)) > 0)
                {
                    hash.AppendData(buffer, 0, read);
                    target.Write(buffer, 0, read);
                }
                sums.Append(Convert.ToHexStringLower(hash.GetHashAndReset())).Append("  ").Append(file).Append('\n');
            }
            using var sumsStream = zip.CreateEntry(ChecksumsEntry).Open();
            sumsStream.Write(Encoding.UTF8.GetBytes(sums.ToString()));
        });
        var digest = FileDigest(zipPath);
        AtomicFile.WriteAllText(zipPath + ".sha256", $"{digest}  {Path.GetFileName(zipPath)}\n");
        return digest;
    }

    /// <summary>Verifies the zip against its <c>.sha256</c> file (when present) and every entry against
    /// <c>SHA256SUMS</c>, then extracts into <paramref name="targetDirectory"/> (written to a temporary sibling
    /// and renamed, so a failed extraction leaves nothing).</summary>
    public static void Extract(string zipPath, string targetDirectory)
    {
        if (!File.Exists(zipPath))
            throw new FileNotFoundException($"archive not found: {zipPath}", zipPath);
        var sidecar = zipPath + ".sha256";
        if (File.Exists(sidecar))
        {
            var expected = File.ReadAllText(sidecar).Split(' ', 2)[0].Trim();
            var actual = FileDigest(zipPath);
            if (!string.Equals(expected, actual, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"{zipPath}: SHA-256 {actual} does not match {expected} recorded in {sidecar}; the archive is corrupted");
        }
        var target = Path.GetFullPath(targetDirectory);
        var work = target + $".extract-{Guid.NewGuid():N}";
        try
        {
            using (var zip = ZipFile.OpenRead(zipPath))
            {
                var sumsEntry = zip.GetEntry(ChecksumsEntry)
                                ?? throw new InvalidDataException($"{zipPath}: no {ChecksumsEntry} entry; not a SharpTune export archive");
                var expected = ParseSums(sumsEntry, zipPath);
                var entries = zip.Entries.Where(e => e.FullName != ChecksumsEntry && !e.FullName.EndsWith('/')).ToList();
                foreach (var unlisted in entries.Where(e => !expected.ContainsKey(e.FullName)))
                    throw new InvalidDataException($"{zipPath}: entry '{unlisted.FullName}' is not listed in {ChecksumsEntry}");
                foreach (var (name, digest) in expected)
                {
                    var entry = zip.GetEntry(name) ?? throw new InvalidDataException($"{zipPath}: '{name}' is listed in {ChecksumsEntry} but missing");
                    var path = Path.GetFullPath(Path.Combine(work, name));
                    if (!path.StartsWith(work + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                        throw new InvalidDataException($"{zipPath}: entry '{name}' points outside the extraction folder");
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    using (var source = entry.Open())
                    using (var file = File.Create(path))
                        source.CopyTo(file);
                    var actual = FileDigest(path);
                    if (actual != digest)
                        throw new InvalidDataException($"{zipPath}: '{name}' has SHA-256 {actual}, {ChecksumsEntry} says {digest}; the archive is corrupted");
                }
            }
            if (Directory.Exists(target))
                Directory.Delete(target, recursive: true);
            Directory.Move(work, target);
        }
        finally
        {
            if (Directory.Exists(work))
                Directory.Delete(work, recursive: true);
        }
    }

    public static string FileDigest(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static Dictionary<string, string> ParseSums(ZipArchiveEntry entry, string zipPath)
    {
        using var reader = new StreamReader(entry.Open());
        var sums = new Dictionary<string, string>(StringComparer.Ordinal);
        var lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (line.Length == 0)
                continue;
            var separator = line.IndexOf("  ", StringComparison.Ordinal);
            if (separator != 64)
                throw new InvalidDataException($"{zipPath}: {ChecksumsEntry} line {lineNumber} is not '<sha256>  <path>'");
            sums[line[(separator + 2)..]] = line[..separator].ToLowerInvariant();
        }
        return sums;
    }
}
