using System.CommandLine;
using System.Globalization;
using SharpTune.Cli.Infrastructure;
using SharpTune.Hub;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune download</c> and <c>sharptune cache list|remove</c>: the Hugging Face cache shared with Python.</summary>
public static class HubCommands
{
    private static Option<string?> CacheDirOption() => new("--cache-dir")
    {
        Description = "Hub cache folder (default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub).",
    };

    private static HubOptions Options(ParseResult parseResult, Option<string?> cacheDir)
    {
        var options = HubModels.Options();
        return parseResult.GetValue(cacheDir) is { } dir ? options with { CacheDirectory = dir } : options;
    }

    public static Command CreateDownload()
    {
        var repo = new Argument<string>("model") { Description = "Hub model id: org/name (or org/name@revision)." };
        var revision = new Option<string?>("--revision") { Description = "Branch, tag or commit hash (default main)." };
        var include = new Option<string[]>("--include")
        {
            Description = "Download only files matching this glob (repeatable; e.g. '*.json'). Default: what loading the model needs " +
                          "(config, tokenizer, generation config, chat template, safetensors weights or their shards, adapter files).",
            AllowMultipleArgumentsPerToken = false,
        };
        var cacheDir = CacheDirOption();
        var command = new Command("download",
            "Download a model from the Hugging Face Hub into the cache shared with Python (HF_HUB_CACHE) and print its snapshot folder. " +
            "Files already cached are not downloaded again; interrupted downloads resume. Honours HF_ENDPOINT, HF_TOKEN (gated and " +
            "private models) and HF_HUB_OFFLINE.")
        {
            repo, revision, include, cacheDir,
        };
        command.SetAction(parseResult =>
        {
            var text = parseResult.GetValue(repo)!;
            if (!RepoReference.TryParse(text, out var reference))
                throw new UsageException($"'{text}' is not a Hub model id (org/name or org/name@revision)");
            if (parseResult.GetValue(revision) is { } pinned)
            {
                if (text.Contains('@'))
                    throw new UsageException($"give the revision once: '{text}' already names one, and --revision {pinned} another");
                reference = reference with { Revision = pinned };
            }
            var patterns = parseResult.GetValue(include) ?? [];
            var selection = patterns.Length > 0 ? HubFileSelection.Patterns(patterns) : HubFileSelection.Model;
            using var client = new HubClient(Options(parseResult, cacheDir));
            var snapshot = CliProgress.Run(reference.ToString(), 1, report =>
                client.DownloadSnapshotAsync(reference.RepoId, reference.Revision, selection,
                    new SyncProgress<HubDownloadProgress>(p => report(HubModels.Fraction(p), HubModels.Status(p)))).GetAwaiter().GetResult());
            Console.WriteLine(snapshot);
            return ExitCodes.Success;
        });
        return command;
    }

    public static Command CreateCache()
    {
        var cacheDir = CacheDirOption();
        var list = new Command("list", "List the cached models: each revision's commit, the refs pointing to it, its files and size.") { cacheDir };
        list.SetAction(parseResult =>
        {
            var cache = new HubCache(Options(parseResult, cacheDir).CacheDirectory);
            var repos = cache.List();
            if (repos.Count == 0)
            {
                Console.WriteLine($"no models in {cache.Directory}");
                return ExitCodes.Success;
            }
            var rows = new List<string[]> { new[] { "MODEL", "REVISION", "REFS", "FILES", "SIZE" } };
            foreach (var r in repos)
            {
                rows.Add([r.RepoId, "", "", "", Size(r.SizeOnDisk)]);
                foreach (var revision in r.Revisions)
                    rows.Add(["", revision.Commit, revision.Refs.Count == 0 ? "-" : string.Join(",", revision.Refs),
                        revision.Files.Count.ToString(CultureInfo.InvariantCulture), Size(revision.SizeOnDisk)]);
            }
            var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(row => row[c].Length)).ToArray();
            foreach (var row in rows)
                Console.WriteLine(string.Join("  ", row.Select((cell, c) => c == row.Length - 1 ? cell.PadLeft(widths[c]) : cell.PadRight(widths[c]))).TrimEnd());
            Console.WriteLine($"{repos.Count} model(s), {Size(repos.Sum(r => r.SizeOnDisk))} in {cache.Directory}");
            return ExitCodes.Success;
        });

        var repo = new Argument<string>("model") { Description = "Hub model id (org/name)." };
        var revision = new Option<string?>("--revision") { Description = "Remove only this revision (commit hash, branch or tag); blobs other revisions use are kept." };
        var removeCacheDir = CacheDirOption();
        var remove = new Command("remove", "Remove a model (or one revision of it) from the cache.") { repo, revision, removeCacheDir };
        remove.SetAction(parseResult =>
        {
            var text = parseResult.GetValue(repo)!;
            if (!RepoReference.TryParse(text, out var reference) || text.Contains('@'))
                throw new UsageException($"'{text}' is not a Hub model id (org/name); give a revision with --revision");
            var cache = new HubCache(Options(parseResult, removeCacheDir).CacheDirectory);
            var freed = cache.Remove(reference.RepoId, parseResult.GetValue(revision));
            Console.WriteLine($"removed {reference.RepoId}{(parseResult.GetValue(revision) is { } r ? "@" + r : "")} from {cache.Directory} ({Size(freed)} freed)");
            return ExitCodes.Success;
        });
        return new Command("cache", "The Hugging Face model cache shared with Python (HF_HUB_CACHE): list or remove models.") { list, remove };
    }

    private static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F1} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F1} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
    };
}
