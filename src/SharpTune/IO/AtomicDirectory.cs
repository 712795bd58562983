namespace SharpTune.IO;

/// <summary>Creates a directory so that readers never see it half-written: fill a temporary sibling, then rename it
/// into place. On failure the temporary sibling is removed and nothing appears at the destination.</summary>
public static class AtomicDirectory
{
    /// <param name="path">The directory to create.</param>
    /// <param name="fill">Writes the contents into the temporary directory it is given.</param>
    /// <param name="overwrite">Replace an existing non-empty directory (else that is an error). An empty one is always replaced.</param>
    public static void Write(string path, Action<string> fill, bool overwrite = false)
    {
        var full = Path.GetFullPath(path.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        if (File.Exists(full))
            throw new IOException($"{full} is a file; expected a directory to write");
        if (!overwrite && Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new IOException($"{full} already exists and is not empty");
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var temporary = Path.Combine(parent, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        var previous = Path.Combine(parent, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.old");
        Directory.CreateDirectory(temporary);
        try
        {
            fill(temporary);
            if (Directory.Exists(full))
                Directory.Move(full, previous);
            Directory.Move(temporary, full);
        }
        finally
        {
            if (Directory.Exists(temporary))
                Directory.Delete(temporary, recursive: true);
            if (Directory.Exists(previous))
                Directory.Delete(previous, recursive: true);
        }
    }
}
