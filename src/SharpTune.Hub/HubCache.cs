namespace SharpTune.Hub;

/// <summary>A revision in the cache: its commit, the refs (branches, tags) that point to it and its files.</summary>
public sealed record CachedRevision(string Commit, IReadOnlyList<string> Refs, string SnapshotPath, IReadOnlyList<string> Files, long SizeOnDisk);

/// <summary>A repository in the cache with its revisions; <see cref="SizeOnDisk"/> counts each blob once.</summary>
public sealed record CachedRepo(string RepoId, string RepoPath, IReadOnlyList<CachedRevision> Revisions, long SizeOnDisk, DateTime LastModified);

/// <summary>
/// The Hugging Face hub cache, laid out exactly as huggingface_hub writes it so Python and .NET share downloads:
/// <code>
/// models--org--name/
///   blobs/&lt;etag&gt;                      file contents, named by the Hub's ETag (sha256 for LFS files, git sha1 otherwise)
///   refs/&lt;revision&gt;                   the commit hash a branch or tag pointed to when last resolved
///   snapshots/&lt;commit&gt;/&lt;path&gt;         relative symlinks to ../../blobs/&lt;etag&gt;
///   .no_exist/&lt;commit&gt;/&lt;path&gt;         empty markers: the file does not exist at that commit
/// .locks/models--org--name/&lt;etag&gt;.lock  one writer per blob across processes (flock, as Python's filelock)
/// </code>
/// </summary>
public sealed class HubCache(string directory)
{
    public string Directory { get; } = Path.GetFullPath(directory);

    public string RepoPath(string repoId) => Path.Combine(Directory, RepoReference.CacheFolderName(repoId));

    public string SnapshotPath(string repoId, string commit) => Path.Combine(RepoPath(repoId), "snapshots", commit);

    public string BlobPath(string repoId, string etag) => Path.Combine(RepoPath(repoId), "blobs", etag);

    internal string LockPath(string repoId, string etag) => Path.Combine(Directory, ".locks", RepoReference.CacheFolderName(repoId), etag + ".lock");

    internal string NoExistPath(string repoId, string commit, string file) => Path.Combine(RepoPath(repoId), ".no_exist", commit, file);

    /// <summary>The commit a revision names in the cache: itself when it is a cached commit hash, else what
    /// <c>refs/&lt;revision&gt;</c> holds; null when the cache does not know it.</summary>
    public string? ResolveCommit(string repoId, string revision)
    {
        if (RepoReference.IsCommitHash(revision))
            return System.IO.Directory.Exists(SnapshotPath(repoId, revision)) ? revision : null;
        var reference = Path.Combine(RepoPath(repoId), "refs", revision);
        if (!File.Exists(reference))
            return null;
        var commit = File.ReadAllText(reference).Trim();
        return RepoReference.IsCommitHash(commit) && System.IO.Directory.Exists(SnapshotPath(repoId, commit)) ? commit : null;
    }

    /// <summary>Records that <paramref name="revision"/> (a branch or tag) points to <paramref name="commit"/>.</summary>
    public void WriteRef(string repoId, string revision, string commit)
    {
        if (revision == commit)
            return;
        var path = Path.Combine(RepoPath(repoId), "refs", revision);
        if (File.Exists(path) && File.ReadAllText(path).Trim() == commit)
            return;
        Directory_CreateFor(path);
        var temp = path + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        File.WriteAllText(temp, commit);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Points <c>snapshots/&lt;commit&gt;/&lt;file&gt;</c> at its blob with a relative symlink (a copy where the
    /// file system has no symlinks), replacing any link already there in one rename.</summary>
    public string LinkSnapshotFile(string repoId, string commit, string file, string etag)
    {
        var pointer = Path.Combine(SnapshotPath(repoId, commit), file);
        var blob = BlobPath(repoId, etag);
        Directory_CreateFor(pointer);
        var temp = pointer + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            File.CreateSymbolicLink(temp, Path.GetRelativePath(Path.GetDirectoryName(pointer)!, blob));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            File.Copy(blob, temp);
        }
        File.Move(temp, pointer, overwrite: true);
        return pointer;
    }

    internal void MarkMissing(string repoId, string commit, string file)
    {
        var marker = NoExistPath(repoId, commit, file);
        Directory_CreateFor(marker);
        File.WriteAllBytes(marker, []);
    }

    internal bool IsKnownMissing(string repoId, string commit, string file) => File.Exists(NoExistPath(repoId, commit, file));

    /// <summary>Every repository in the cache with its revisions and sizes (what <c>huggingface-cli scan-cache</c> shows).</summary>
    public IReadOnlyList<CachedRepo> List()
    {
        if (!System.IO.Directory.Exists(Directory))
            return [];
        var repos = new List<CachedRepo>();
        foreach (var repoPath in System.IO.Directory.EnumerateDirectories(Directory, "models--*").Order(StringComparer.Ordinal))
        {
            var repoId = Path.GetFileName(repoPath)["models--".Length..].Replace("--", "/", StringComparison.Ordinal);
            var refs = new Dictionary<string, List<string>>();
            var refsPath = Path.Combine(repoPath, "refs");
            if (System.IO.Directory.Exists(refsPath))
                foreach (var file in System.IO.Directory.EnumerateFiles(refsPath, "*", SearchOption.AllDirectories))
                {
                    var commit = File.ReadAllText(file).Trim();
                    if (!refs.TryGetValue(commit, out var names))
                        refs[commit] = names = [];
                    names.Add(Path.GetRelativePath(refsPath, file).Replace('\\', '/'));
                }
            var revisions = new List<CachedRevision>();
            var snapshots = Path.Combine(repoPath, "snapshots");
            if (System.IO.Directory.Exists(snapshots))
                foreach (var snapshot in System.IO.Directory.EnumerateDirectories(snapshots).Order(StringComparer.Ordinal))
                {
                    var files = SnapshotFiles(snapshot);
                    var size = files.Sum(f => ContentLength(Path.Combine(snapshot, f)));
                    var commit = Path.GetFileName(snapshot);
                    revisions.Add(new CachedRevision(commit, refs.GetValueOrDefault(commit)?.Order(StringComparer.Ordinal).ToList() ?? [], snapshot, files, size));
                }
            var blobs = Path.Combine(repoPath, "blobs");
            var blobSize = System.IO.Directory.Exists(blobs)
                ? System.IO.Directory.EnumerateFiles(blobs).Where(f => !f.EndsWith(".incomplete", StringComparison.Ordinal)).Sum(f => new FileInfo(f).Length)
                : 0;
            // Snapshots of a cache without symlinks hold copies, which then count in place of blobs.
            var copies = revisions.Sum(r => r.Files.Select(f => new FileInfo(Path.Combine(r.SnapshotPath, f))).Where(f => f.LinkTarget is null).Sum(f => f.Length));
            repos.Add(new CachedRepo(repoId, repoPath, revisions, blobSize + copies, System.IO.Directory.GetLastWriteTimeUtc(repoPath)));
        }
        return repos;
    }

    /// <summary>Deletes a repository from the cache, or one revision of it: its snapshot, the refs pointing to it and
    /// the blobs no other snapshot uses. Returns the bytes freed; throws when the cache does not hold it.</summary>
    public long Remove(string repoId, string? revision = null)
    {
        var repo = List().FirstOrDefault(r => r.RepoId == repoId)
                   ?? throw new HubNotFoundException($"{repoId} is not in the cache ({Directory})");
        if (revision is null)
        {
            System.IO.Directory.Delete(repo.RepoPath, recursive: true);
            var locks = Path.Combine(Directory, ".locks", RepoReference.CacheFolderName(repoId));
            if (System.IO.Directory.Exists(locks))
                System.IO.Directory.Delete(locks, recursive: true);
            return repo.SizeOnDisk;
        }
        var target = repo.Revisions.FirstOrDefault(r => r.Commit == revision || r.Refs.Contains(revision))
                     ?? throw new HubNotFoundException($"revision {revision} of {repoId} is not in the cache ({Directory}); it holds " +
                                                       string.Join(", ", repo.Revisions.Select(r => r.Refs.Count > 0 ? $"{r.Commit} ({string.Join(", ", r.Refs)})" : r.Commit)));
        var kept = repo.Revisions.Where(r => r != target).SelectMany(BlobsOf).ToHashSet(StringComparer.Ordinal);
        long freed = 0;
        foreach (var blob in BlobsOf(target).Where(b => !kept.Contains(b)).Distinct())
            if (File.Exists(blob))
            {
                freed += new FileInfo(blob).Length;
                File.Delete(blob);
            }
        freed += target.Files.Select(f => new FileInfo(Path.Combine(target.SnapshotPath, f))).Where(f => f.LinkTarget is null).Sum(f => f.Length);
        System.IO.Directory.Delete(target.SnapshotPath, recursive: true);
        foreach (var name in target.Refs)
            File.Delete(Path.Combine(repo.RepoPath, "refs", name));
        var noExist = Path.Combine(repo.RepoPath, ".no_exist", target.Commit);
        if (System.IO.Directory.Exists(noExist))
            System.IO.Directory.Delete(noExist, recursive: true);
        return freed;
    }

    private static IEnumerable<string> BlobsOf(CachedRevision revision) =>
        revision.Files.Select(f => new FileInfo(Path.Combine(revision.SnapshotPath, f)))
            .Where(f => f.LinkTarget is not null)
            .Select(f => Path.GetFullPath(Path.Combine(f.DirectoryName!, f.LinkTarget!)));

    private static List<string> SnapshotFiles(string snapshot) =>
        System.IO.Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshot, f).Replace('\\', '/'))
            .Where(f => !f.EndsWith(".tmp", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>The size of the content a path holds: a symlink's target's (FileInfo.Length of a link is the link's own);
    /// 0 for a dangling link.</summary>
    internal static long ContentLength(string path)
    {
        var file = new FileInfo(path);
        if (file.LinkTarget is null)
            return file.Length;
        return file.ResolveLinkTarget(returnFinalTarget: true) is FileInfo { Exists: true } target ? target.Length : 0;
    }

    private static void Directory_CreateFor(string file) => System.IO.Directory.CreateDirectory(Path.GetDirectoryName(file)!);

    /// <summary>Waits for the exclusive lock on <paramref name="path"/> (flock on Unix, a share-none handle on Windows),
    /// polling so a lock held by another process is waited for, not failed on.</summary>
    internal static async Task<FileStream> LockAsync(string path, CancellationToken cancellationToken)
    {
        Directory_CreateFor(path);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                await Task.Delay(100, cancellationToken);
            }
        }
    }
}
