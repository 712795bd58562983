using System.Security.Cryptography;
using System.Text;
using SharpTune.Hub;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Hub;

/// <summary>A cache laid out by hand exactly as huggingface_hub lays it out (symlinks from snapshots to blobs), read
/// by the library and the CLI without a server; <c>download</c> and <c>cache</c> commands; two processes downloading
/// one model at once.</summary>
public class HubCliTests
{
    private const string RepoId = "sharptune/stories260K";
    private static readonly string Source = Path.Combine(RepoPaths.Models, "stories260K");
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    /// <summary>What huggingface_hub leaves after <c>snapshot_download</c>: blobs named by sha256 (LFS) or git sha1,
    /// relative symlinks from snapshots/&lt;commit&gt;, refs/&lt;branch&gt;, a .no_exist marker.</summary>
    private static (string Cache, string Snapshot) HandLaidCache(string? tagged = null)
    {
        var cache = Path.Combine(RepoPaths.NewTempDirectory("hf-cache"), "hub");
        var repo = Path.Combine(cache, "models--sharptune--stories260K");
        var commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes("main commit")));
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        var snapshot = Path.Combine(repo, "snapshots", commit);
        Directory.CreateDirectory(snapshot);
        foreach (var file in Directory.EnumerateFiles(Source))
        {
            var content = File.ReadAllBytes(file);
            var etag = file.EndsWith(".safetensors", StringComparison.Ordinal) ? LocalHub.Sha256(content) : LocalHub.GitBlobSha1(content);
            File.WriteAllBytes(Path.Combine(repo, "blobs", etag), content);
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(file)), $"../../blobs/{etag}");
        }
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit);
        Directory.CreateDirectory(Path.Combine(repo, ".no_exist", commit));
        File.WriteAllBytes(Path.Combine(repo, ".no_exist", commit, "special_tokens_map.json"), []);
        if (tagged is not null)
        {
            // A second revision sharing every blob but one.
            var older = Path.Combine(repo, "snapshots", tagged);
            Directory.CreateDirectory(older);
            foreach (var link in Directory.EnumerateFiles(snapshot).Where(f => !f.EndsWith("generation_config.json", StringComparison.Ordinal)))
                File.CreateSymbolicLink(Path.Combine(older, Path.GetFileName(link)), new FileInfo(link).LinkTarget!);
            var generation = Encoding.UTF8.GetBytes("""{"max_new_tokens": 5}""");
            File.WriteAllBytes(Path.Combine(repo, "blobs", LocalHub.GitBlobSha1(generation)), generation);
            File.CreateSymbolicLink(Path.Combine(older, "generation_config.json"), $"../../blobs/{LocalHub.GitBlobSha1(generation)}");
            File.WriteAllText(Path.Combine(repo, "refs", "v1"), tagged);
        }
        return (cache, snapshot);
    }

    private static Dictionary<string, string?> Environment(string cache, bool offline, string? endpoint = null) => new()
    {
        ["HF_HUB_CACHE"] = cache,
        ["HF_HOME"] = Path.GetDirectoryName(cache),
        ["HF_HUB_OFFLINE"] = offline ? "1" : null,
        ["HF_ENDPOINT"] = endpoint ?? "http://127.0.0.1:1",
        ["HF_TOKEN"] = null,
    };

    [Fact]
    public async Task HandLaidCacheIsReadWithoutAServer()
    {
        var (cache, snapshot) = HandLaidCache();
        var offline = new HubOptions { CacheDirectory = cache, Offline = true };
        Assert.Equal(snapshot, PretrainedPath.Resolve(RepoId, options: offline));
        Assert.Equal(snapshot, PretrainedPath.Resolve(RepoId + "@" + Path.GetFileName(snapshot), options: offline));
        // Online settings with the Hub unreachable fall back to the cache too.
        Assert.Equal(snapshot, PretrainedPath.Resolve(RepoId, options: new HubOptions { CacheDirectory = cache, Endpoint = "http://127.0.0.1:1" }));

        using (var client = new HubClient(offline))
        {
            Assert.Equal(Path.Combine(snapshot, "config.json"), await client.DownloadFileAsync(RepoId, "config.json"));
            // huggingface_hub's .no_exist marker: known absent, said so without a request.
            var absent = await Assert.ThrowsAsync<HubNotFoundException>(() => client.DownloadFileAsync(RepoId, "special_tokens_map.json"));
            Assert.Contains("does not exist in sharptune/stories260K", absent.Message);
        }

        using var model = SharpTune.Models.AutoModel.FromPretrained(snapshot);
        using var reference = SharpTune.Models.AutoModel.FromPretrained(Source);
        Assert.Equal(reference.state_dict().Count, model.state_dict().Count);

        var listed = Assert.Single(new HubCache(cache).List());
        Assert.Equal(RepoId, listed.RepoId);
        Assert.Equal(Directory.EnumerateFiles(Source).Sum(f => new FileInfo(f).Length), listed.SizeOnDisk);
        Assert.Equal(["main"], Assert.Single(listed.Revisions).Refs);
    }

    [Fact]
    public void PredictByIdOfflineMatchesPredictOnTheSnapshotFolder()
    {
        var (cache, snapshot) = HandLaidCache();
        var work = RepoPaths.NewTempDirectory();
        var environment = Environment(cache, offline: true);
        string[] Predict(string model, string output) =>
            ["predict", "--model", model, "--task", "text-generation", "--text", "Once upon a time", "--text", "Lily saw a", "--max-new-tokens", "8", "--output", output];

        var byId = CliRunner.Run(Timeout, environment, Predict(RepoId, Path.Combine(work, "by-id.jsonl")));
        Assert.True(byId.ExitCode == 0, byId.All);
        var byFolder = CliRunner.Run(Timeout, environment, Predict(snapshot, Path.Combine(work, "by-folder.jsonl")));
        Assert.True(byFolder.ExitCode == 0, byFolder.All);
        Assert.Equal(File.ReadAllBytes(Path.Combine(work, "by-folder.jsonl")), File.ReadAllBytes(Path.Combine(work, "by-id.jsonl")));
        // The table printed is the same too (it names the output file, which differs).
        Assert.Equal(byFolder.StdOut.Replace("by-folder.jsonl", "OUT", StringComparison.Ordinal), byId.StdOut.Replace("by-id.jsonl", "OUT", StringComparison.Ordinal));

        var missing = CliRunner.Run(Timeout, environment, Predict("sharptune/not-cached", Path.Combine(work, "missing.jsonl")));
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("sharptune/not-cached is not in the Hugging Face cache", missing.StdErr);
        Assert.Contains("HF_HUB_OFFLINE is set: offline, it cannot be downloaded", missing.StdErr);
        Assert.DoesNotContain("   at ", missing.StdErr);
        Assert.False(File.Exists(Path.Combine(work, "missing.jsonl")));
    }

    [Fact]
    public void CacheListAndRemove()
    {
        var older = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes("older commit")));
        var (cache, snapshot) = HandLaidCache(tagged: older);
        var environment = Environment(cache, offline: true);
        var list = CliRunner.Run(Timeout, environment, "cache", "list");
        Assert.True(list.ExitCode == 0, list.All);
        Assert.Contains(RepoId, list.StdOut);
        Assert.Contains($"{Path.GetFileName(snapshot)}  main", list.StdOut);
        Assert.Contains($"{older}  v1", list.StdOut);
        Assert.Contains("1 model(s)", list.StdOut);

        // Removing one revision keeps the blobs the other still uses.
        var removed = CliRunner.Run(Timeout, environment, "cache", "remove", RepoId, "--revision", "v1");
        Assert.True(removed.ExitCode == 0, removed.All);
        Assert.Contains("(21 B freed)", removed.StdOut);
        var repo = Path.Combine(cache, "models--sharptune--stories260K");
        Assert.False(Directory.Exists(Path.Combine(repo, "snapshots", older)));
        Assert.False(File.Exists(Path.Combine(repo, "refs", "v1")));
        Assert.All(Directory.EnumerateFiles(snapshot), f => Assert.True(File.Exists(f), f + " lost its blob"));

        var all = CliRunner.Run(Timeout, environment, "cache", "remove", RepoId);
        Assert.True(all.ExitCode == 0, all.All);
        Assert.False(Directory.Exists(repo));
        var again = CliRunner.Run(Timeout, environment, "cache", "remove", RepoId);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("sharptune/stories260K is not in the cache", again.StdErr);
    }

    [Fact]
    public async Task TwoProcessesDownloadingOneModelEndWithOneCorrectCopy()
    {
        using var hub = new LocalHub { ChunkDelay = TimeSpan.FromMilliseconds(20) }; // ~1.3 s for the weights: the downloads overlap
        var files = LocalHub.FolderFiles(Source);
        var commit = hub.AddCommit(RepoId, files, ["main"]);
        var cache = Path.Combine(RepoPaths.NewTempDirectory("hf-cache"), "hub");
        var environment = Environment(cache, offline: false, endpoint: hub.Endpoint);

        var results = await Task.WhenAll(
            CliRunner.RunAsync(Timeout, environment, "download", RepoId),
            CliRunner.RunAsync(Timeout, environment, "download", RepoId));

        var expected = Path.Combine(cache, "models--sharptune--stories260K", "snapshots", commit);
        foreach (var result in results)
        {
            Assert.True(result.ExitCode == 0, result.All);
            Assert.Equal(expected, result.StdOut.Trim());
        }
        var blobs = Path.Combine(cache, "models--sharptune--stories260K", "blobs");
        Assert.Equal(files.Count, Directory.EnumerateFiles(blobs).Count()); // no duplicates, no .incomplete left
        foreach (var (name, content) in files)
            Assert.Equal(content, File.ReadAllBytes(Path.Combine(expected, name)));
        // The weights crossed the wire once: the second process waited on the lock, then found the blob.
        Assert.Equal(1, hub.Requests.Count(r => r.Method == "GET" && r.Path.StartsWith("/lfs/", StringComparison.Ordinal)));

        // --include picks files by pattern; a cached file is not fetched again.
        var cache2 = Path.Combine(RepoPaths.NewTempDirectory("hf-cache"), "hub");
        var some = CliRunner.Run(Timeout, Environment(cache2, offline: false, endpoint: hub.Endpoint), "download", RepoId, "--include", "*.json", "--revision", "main");
        Assert.True(some.ExitCode == 0, some.All);
        Assert.Equal(files.Keys.Where(f => f.EndsWith(".json", StringComparison.Ordinal)).Order(), Directory.EnumerateFiles(some.StdOut.Trim()).Select(Path.GetFileName).Order());
    }
}
