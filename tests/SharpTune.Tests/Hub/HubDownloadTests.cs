using System.Text;
using SharpTune.Hub;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Hub;

/// <summary>Downloads against <see cref="LocalHub"/> serving models/stories260K: the cache layout huggingface_hub
/// writes, cache hits, offline mode, revisions, resume, corruption, errors, gated repositories.</summary>
public class HubDownloadTests
{
    private const string RepoId = "sharptune/stories260K";
    private static readonly string Source = Path.Combine(RepoPaths.Models, "stories260K");

    private static HubOptions Options(LocalHub hub, string cache, string? token = null, bool offline = false) => new()
    {
        CacheDirectory = cache, Endpoint = hub.Endpoint, Token = token, Offline = offline, RetryDelay = TimeSpan.FromMilliseconds(10),
    };

    private static string NewCache() => Path.Combine(RepoPaths.NewTempDirectory("hub-cache"), "hub");

    [Fact]
    public async Task DownloadWritesHuggingFaceCacheLayout()
    {
        using var hub = new LocalHub();
        var files = LocalHub.FolderFiles(Source);
        var commit = hub.AddCommit(RepoId, files, ["main"]);
        var cache = NewCache();
        using var client = new HubClient(Options(hub, cache));

        var snapshot = await client.DownloadSnapshotAsync(RepoId);

        var repo = Path.Combine(cache, "models--sharptune--stories260K");
        Assert.Equal(Path.Combine(repo, "snapshots", commit), snapshot);
        Assert.Equal(commit, File.ReadAllText(Path.Combine(repo, "refs", "main")));
        Assert.Equal(files.Keys.Order(), Directory.EnumerateFiles(snapshot).Select(Path.GetFileName).Order());
        foreach (var (name, content) in files)
        {
            var pointer = new FileInfo(Path.Combine(snapshot, name));
            var etag = LocalHub.IsLfs(name) ? LocalHub.Sha256(content) : LocalHub.GitBlobSha1(content);
            Assert.Equal(Path.Combine("..", "..", "blobs", etag), pointer.LinkTarget); // relative symlink, as huggingface_hub makes
            Assert.Equal(content, File.ReadAllBytes(Path.Combine(repo, "blobs", etag)));
        }
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(repo, "blobs"), "*.incomplete"));
        Assert.True(File.Exists(Path.Combine(cache, ".locks", "models--sharptune--stories260K", LocalHub.Sha256(files["model.safetensors"]) + ".lock")));

        // The model loads from the snapshot as from the original folder.
        using var model = SharpTune.Models.AutoModel.FromPretrained(snapshot);
        Assert.Equal(SharpTune.Tokenizers.AutoTokenizer.FromPretrained(Source).EncodeToIds("Once upon a time"),
            SharpTune.Tokenizers.AutoTokenizer.FromPretrained(snapshot).EncodeToIds("Once upon a time"));
    }

    [Fact]
    public async Task CachedFilesAreNotRequestedAgainAndOfflineNeedsNoServer()
    {
        using var hub = new LocalHub();
        var commit = hub.AddCommit(RepoId, LocalHub.FolderFiles(Source), ["main"]);
        var cache = NewCache();
        using (var client = new HubClient(Options(hub, cache)))
            await client.DownloadSnapshotAsync(RepoId);
        hub.ClearRequests();

        using (var client = new HubClient(Options(hub, cache)))
            Assert.Equal(commit, Path.GetFileName(await client.DownloadSnapshotAsync(RepoId)));
        // One revision lookup (is main still that commit?), no file request.
        Assert.Equal(["GET /api/models/sharptune/stories260K/revision/main"], hub.Requests.Select(r => $"{r.Method} {r.Path}"));

        hub.ClearRequests();
        using (var offline = new HubClient(Options(hub, cache, offline: true)))
        {
            Assert.Equal(commit, Path.GetFileName(await offline.DownloadSnapshotAsync(RepoId)));
            Assert.Equal(commit, Path.GetFileName(await offline.DownloadSnapshotAsync(RepoId, commit)));
            var missing = await Assert.ThrowsAsync<HubOfflineException>(() => offline.DownloadSnapshotAsync("sharptune/other"));
            Assert.Contains("sharptune/other is not in the Hugging Face cache", missing.Message);
            Assert.Contains("offline", missing.Message);
            await Assert.ThrowsAsync<HubOfflineException>(() => offline.DownloadSnapshotAsync(RepoId, "v2"));
        }
        Assert.Empty(hub.Requests);

        // A Hub that cannot be reached: the cached snapshot is used, an uncached model says why it is missing.
        var unreachable = Options(hub, cache) with { Endpoint = "http://127.0.0.1:1", RetryDelay = TimeSpan.FromSeconds(30) }; // not waited for
        using (var client = new HubClient(unreachable))
        {
            Assert.Equal(commit, Path.GetFileName(await client.DownloadSnapshotAsync(RepoId)));
            var error = await Assert.ThrowsAsync<HubOfflineException>(() => client.DownloadSnapshotAsync("sharptune/other"));
            Assert.Contains("cannot be reached", error.Message);
        }
    }

    [Fact]
    public async Task RevisionsArePinnedByBranchTagAndCommit()
    {
        using var hub = new LocalHub();
        var files = LocalHub.FolderFiles(Source);
        var v1 = hub.AddCommit(RepoId, files, ["v1"]);
        var changed = new Dictionary<string, byte[]>(files) { ["generation_config.json"] = Encoding.UTF8.GetBytes("""{"max_new_tokens": 7}""") };
        var v2 = hub.AddCommit(RepoId, changed, ["main"]);
        var cache = NewCache();
        using var client = new HubClient(Options(hub, cache));

        var main = await client.DownloadSnapshotAsync(RepoId);
        var tagged = await client.DownloadSnapshotAsync(RepoId, "v1");
        var byCommit = await client.DownloadSnapshotAsync(RepoId, v1);
        Assert.Equal(v2, Path.GetFileName(main));
        Assert.Equal(v1, Path.GetFileName(tagged));
        Assert.Equal(tagged, byCommit);
        Assert.Equal(changed["generation_config.json"], File.ReadAllBytes(Path.Combine(main, "generation_config.json")));
        Assert.Equal(files["generation_config.json"], File.ReadAllBytes(Path.Combine(tagged, "generation_config.json")));
        Assert.Equal(v1, File.ReadAllText(Path.Combine(cache, "models--sharptune--stories260K", "refs", "v1")));
        // The unchanged weights are one blob shared by both snapshots.
        Assert.Single(Directory.EnumerateFiles(Path.Combine(cache, "models--sharptune--stories260K", "blobs"), LocalHub.Sha256(files["model.safetensors"])));
        Assert.Equal(1, hub.Requests.Count(r => r.Method == "GET" && r.Path.StartsWith("/lfs/", StringComparison.Ordinal)));

        var unknown = await Assert.ThrowsAsync<HubNotFoundException>(() => client.DownloadSnapshotAsync(RepoId, "v9"));
        Assert.Contains("revision v9 not found in sharptune/stories260K", unknown.Message);
    }

    [Fact]
    public async Task InterruptedDownloadResumesWithARangeRequest()
    {
        using var hub = new LocalHub();
        var files = LocalHub.FolderFiles(Source);
        hub.AddCommit(RepoId, files, ["main"]);
        var cache = NewCache();
        var weights = files["model.safetensors"];
        var blob = Path.Combine(cache, "models--sharptune--stories260K", "blobs", LocalHub.Sha256(weights));

        // One attempt only: the cut leaves the partial .incomplete file behind and the call fails.
        hub.CutOnce = "model.safetensors";
        using (var client = new HubClient(Options(hub, cache) with { MaxAttempts = 1 }))
            await Assert.ThrowsAnyAsync<IOException>(() => client.DownloadSnapshotAsync(RepoId));
        var partial = new FileInfo(blob + ".incomplete").Length;
        Assert.InRange(partial, 1, weights.Length - 1);
        Assert.False(File.Exists(blob));

        // The next call asks only for the rest.
        hub.ClearRequests();
        using (var client = new HubClient(Options(hub, cache)))
            await client.DownloadSnapshotAsync(RepoId);
        Assert.Equal($"bytes={partial}-", hub.Requests.Single(r => r.Path.StartsWith("/lfs/", StringComparison.Ordinal)).Range);
        Assert.Equal(weights, File.ReadAllBytes(blob));

        // Within one call, a cut connection is retried from where it stopped.
        var cache2 = NewCache();
        hub.CutOnce = "model.safetensors";
        hub.ClearRequests();
        using (var client = new HubClient(Options(hub, cache2)))
            await client.DownloadSnapshotAsync(RepoId);
        var ranges = hub.Requests.Where(r => r.Path.StartsWith("/lfs/", StringComparison.Ordinal)).Select(r => r.Range).ToList();
        Assert.Equal(2, ranges.Count);
        Assert.Null(ranges[0]);
        Assert.StartsWith("bytes=", ranges[1]);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(cache2, "models--sharptune--stories260K", "blobs", LocalHub.Sha256(weights))));
    }

    [Theory]
    [InlineData("model.safetensors")] // LFS: SHA-256
    [InlineData("tokenizer.json")]    // regular: git blob SHA-1
    public async Task CorruptedDownloadIsDetectedAndDiscarded(string file)
    {
        using var hub = new LocalHub();
        var files = LocalHub.FolderFiles(Source);
        var commit = hub.AddCommit(RepoId, files, ["main"]);
        hub.Corrupt = file;
        var cache = NewCache();
        using var client = new HubClient(Options(hub, cache));
        var error = await Assert.ThrowsAsync<HubChecksumException>(() => client.DownloadSnapshotAsync(RepoId));
        Assert.Contains($"{file} of {RepoId} is corrupted", error.Message);
        var repo = Path.Combine(cache, "models--sharptune--stories260K");
        var etag = LocalHub.IsLfs(file) ? LocalHub.Sha256(files[file]) : LocalHub.GitBlobSha1(files[file]);
        Assert.DoesNotContain(Directory.EnumerateFiles(Path.Combine(repo, "blobs")), b => b.Contains(etag, StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(repo, "snapshots", commit, file)));
    }

    [Fact]
    public async Task MissingRepositoryRevisionAndFileGiveClearErrors()
    {
        using var hub = new LocalHub();
        hub.AddCommit(RepoId, LocalHub.FolderFiles(Source), ["main"]);
        var cache = NewCache();
        using var anonymous = new HubClient(Options(hub, cache));
        var noRepo = await Assert.ThrowsAsync<HubNotFoundException>(() => anonymous.DownloadSnapshotAsync("sharptune/nothing"));
        Assert.Contains("repository sharptune/nothing not found", noRepo.Message);
        Assert.Contains("HTTP 401", noRepo.Message);
        Assert.Contains("set HF_TOKEN", noRepo.Message); // without a token a private repository looks missing

        using var withToken = new HubClient(Options(hub, cache, token: "hf_x"));
        var notFound = await Assert.ThrowsAsync<HubNotFoundException>(() => withToken.DownloadSnapshotAsync("sharptune/nothing"));
        Assert.Contains("HTTP 404", notFound.Message);

        var noFile = await Assert.ThrowsAsync<HubNotFoundException>(() => anonymous.DownloadFileAsync(RepoId, "pytorch_model.bin"));
        Assert.Contains("file pytorch_model.bin not found in sharptune/stories260K", noFile.Message);

        var nothingMatches = await Assert.ThrowsAsync<HubNotFoundException>(() => anonymous.DownloadSnapshotAsync(RepoId, selection: HubFileSelection.Patterns(["*.gguf"])));
        Assert.Contains("has no *.gguf", nothingMatches.Message);

        var resolved = await Assert.ThrowsAsync<HubNotFoundException>(() =>
            PretrainedPath.ResolveAsync("sharptune/nothing", options: Options(hub, cache)));
        Assert.Contains("'sharptune/nothing' is not a local folder", resolved.Message);
    }

    [Fact]
    public async Task GatedRepositoryNeedsItsToken()
    {
        using var hub = new LocalHub();
        hub.AddCommit("meta/gated", LocalHub.FolderFiles(Source), ["main"], gatedToken: "hf_good");
        var cache = NewCache();
        using (var anonymous = new HubClient(Options(hub, cache)))
        {
            var error = await Assert.ThrowsAsync<HubAccessDeniedException>(() => anonymous.DownloadSnapshotAsync("meta/gated"));
            Assert.Contains("gated or private", error.Message);
            Assert.Contains("accept its terms", error.Message);
            Assert.Contains("HF_TOKEN", error.Message);
        }
        using (var wrong = new HubClient(Options(hub, cache, token: "hf_bad")))
            Assert.Contains("HTTP 403", (await Assert.ThrowsAsync<HubAccessDeniedException>(() => wrong.DownloadSnapshotAsync("meta/gated"))).Message);

        hub.ClearRequests();
        using (var good = new HubClient(Options(hub, cache, token: "hf_good")))
            await good.DownloadSnapshotAsync("meta/gated");
        // The token goes to the Hub, never to the LFS storage it redirects to.
        Assert.All(hub.Requests.Where(r => !r.Path.StartsWith("/lfs/", StringComparison.Ordinal)), r => Assert.Equal("Bearer hf_good", r.Authorization));
        Assert.Null(hub.Requests.Single(r => r.Path.StartsWith("/lfs/", StringComparison.Ordinal)).Authorization);
    }

    [Fact]
    public void TokensAreRefusedOverPlainHttpExceptToLoopback()
    {
        var cache = NewCache();
        var error = Assert.Throws<ArgumentException>(() => new HubClient(new HubOptions { CacheDirectory = cache, Endpoint = "http://hub.example.com", Token = "hf_x" }));
        Assert.Contains("plain http", error.Message);
        new HubClient(new HubOptions { CacheDirectory = cache, Endpoint = "http://hub.example.com" }).Dispose(); // anonymous is fine
        new HubClient(new HubOptions { CacheDirectory = cache, Endpoint = "http://127.0.0.1:8080", Token = "hf_x" }).Dispose();
        new HubClient(new HubOptions { CacheDirectory = cache, Endpoint = "https://hub.example.com", Token = "hf_x" }).Dispose();
    }

    [Theory]
    [InlineData("org/name", "org/name", "main")]
    [InlineData("Qwen/Qwen2.5-0.5B-Instruct@v1.0", "Qwen/Qwen2.5-0.5B-Instruct", "v1.0")]
    [InlineData("a_b/c.d@0123456789abcdef0123456789abcdef01234567", "a_b/c.d", "0123456789abcdef0123456789abcdef01234567")]
    [InlineData("./org/name", null, null)]
    [InlineData("/org/name", null, null)]
    [InlineData("a/b/c", null, null)]
    [InlineData("name", null, null)]
    [InlineData("org/na--me", null, null)]
    [InlineData("org/name@", null, null)]
    [InlineData("~/models", null, null)]
    public void HubIdsAreTellableFromPaths(string text, string? repoId, string? revision)
    {
        Assert.Equal(repoId is not null, RepoReference.TryParse(text, out var reference));
        if (repoId is not null)
            Assert.Equal((repoId, revision), (reference.RepoId, reference.Revision));
    }

    [Fact]
    public void LocalFolderWinsOverHubId()
    {
        // models/stories260K has the shape of an id, and is a folder here: it is used as is, with no request.
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, Source);
        Assert.Equal(Source, PretrainedPath.Resolve(Source));
        if (RepoReference.TryParse(relative, out _))
            Assert.Equal(relative, PretrainedPath.Resolve(relative));
    }
}
