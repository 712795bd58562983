using System.CommandLine;
using System.Globalization;
using SharpTune.Classic;
using SharpTune.Cli.Infrastructure;
using SharpTune.Training;
using SharpTune.Hub;
using SharpTune.Training.Heads;
using SharpTune.Data;
using SharpTune.Training.Approaches;
using Spectre.Console;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune classify</c>: trains and compares document classification approaches on one problem and
/// writes metrics.json, per-approach predictions, report.md with ROC/PR plots, and a submission for the test file.</summary>
public static class ClassifyCommand
{
    /// <summary>What an approach factory receives: the parsed command line.</summary>
    public sealed record ApproachContext(ParseResult ParseResult, EngineContext Engine);

    /// <summary>An approach the command can run, or why it cannot in this build.</summary>
    public sealed record ApproachEntry(string Name, string Summary, Func<ApproachContext, IClassificationApproach>? Create, string? UnavailableReason = null);

    /// <summary>Every approach, in the order 'all' runs them. New approaches register here
    /// (declared before the options, whose help lists them).</summary>
    public static IReadOnlyList<ApproachEntry> Registry { get; } =
    [
        new(TfidfApproach.ApproachName, "TF-IDF word n-grams + logistic regression", context => new TfidfApproach(TfidfOptions(context.ParseResult))),
        new(EmbeddingsApproach.ApproachName, "frozen transformer embeddings (mean, CLS or max pooling) + logistic regression", EmbeddingsOptions),
        new("finetune", "fine-tune the --model encoder with a sequence-classification head (Trainer)",
            context => new FineTuneApproach(FineTuneCliOptions.Build(context.ParseResult, context.Engine, context.ParseResult.GetValue(Model!), "finetune"))),
        new("kfold", "pooling head on the --model encoder, stratified k-fold (out-of-fold predictions, fold-averaged eval/test)",
            context => new KFoldApproach(FineTuneCliOptions.Build(context.ParseResult, context.Engine, context.ParseResult.GetValue(Model!), "kfold"),
                context.ParseResult.GetValue(FineTuneCliOptions.Folds))),
    ];

    private static readonly Option<string> Train = new("--train") { Description = "Training file (CSV, TSV, JSONL or Parquet).", Required = true };
    private static readonly Option<string?> Eval = new("--eval") { Description = "Evaluation file; without it, --eval-fraction of the training rows (stratified) is held out." };
    private static readonly Option<double?> EvalFraction = new("--eval-fraction")
    {
        Description = "Hold out this fraction of --train (stratified by label, seeded by --seed) as the eval set, for data with a single file.",
    };
    private static readonly Option<string?> Test = new("--test") { Description = "Unlabelled (or labelled) file to score into submission.csv." };
    private static readonly Option<string> TextColumn = new("--text-column")
    {
        Description = "Column holding the text. Alternatives separated by '|' (e.g. 'sentence|content') pick the first one each file has.",
        Required = true,
    };
    private static readonly Option<string?> TextPairColumn = new("--text-pair-column") { Description = "Column holding the second text of a pair (joined to the text for TF-IDF)." };
    private static readonly Option<string> LabelColumn = new("--label-column") { Description = "Column holding the label.", Required = true };
    private static readonly Option<string?> IdColumn = new("--id-column") { Description = "Column holding row ids for predictions and submission (default: 'id' when present, else the row number)." };
    private static readonly Option<string> Approach = new("--approach")
    {
        Description = "Approaches to run and compare, comma-separated, or 'all': " + string.Join(", ", Registry.Select(a => a.Name)) + ".",
        DefaultValueFactory = _ => TfidfApproach.ApproachName,
    };
    private static readonly Option<string?> Model = new("--model") { Description = "Pretrained model directory with its tokenizer (embeddings, finetune and kfold approaches)." };
    private static readonly Option<string?> Tokenizer = new("--tokenizer") { Description = "Tokenizer file or folder for --model (default: the model folder)." };
    private static readonly Option<string> Output = new("--output", "-o") { Description = "Output directory.", Required = true };
    private static readonly Option<double?> LabelThreshold = new("--label-threshold")
    {
        Description = "Binarise numeric (soft) labels: 1 at or above this value, 0 below (e.g. 0.5 for a 'generated' probability).",
    };
    private static readonly Option<bool> SkipBadRows = new("--skip-bad-rows") { Description = "Skip rows with a missing or unknown label or an empty text (they are listed) instead of stopping." };
    private static readonly Option<string> NgramRange = new("--ngram-range") { Description = "TF-IDF word n-gram range 'min,max'.", DefaultValueFactory = _ => "1,3" };
    private static readonly Option<int> MinDf = new("--min-df") { Description = "TF-IDF: ignore terms in fewer documents.", DefaultValueFactory = _ => 1 };
    private static readonly Option<int?> MaxFeatures = new("--max-features") { Description = "TF-IDF: keep only the most frequent terms." };
    private static readonly Option<bool> NoSublinearTf = new("--no-sublinear-tf") { Description = "TF-IDF: raw term counts instead of 1 + log(tf)." };
    private static readonly Option<double> C = new("--c") { Description = "Logistic regression inverse regularisation strength C.", DefaultValueFactory = _ => 1.0 };
    private static readonly Option<int> MaxIter = new("--max-iter") { Description = "Logistic regression L-BFGS iterations at most (scikit-learn's default 100).", DefaultValueFactory = _ => 100 };
    private static readonly Option<string?> ClassWeight = new("--class-weight") { Description = "Logistic regression class weights: 'balanced' for imbalanced data." };

    public static Command Create()
    {
        var command = new Command("classify",
            "Train and compare document classifiers (TF-IDF + logistic regression, frozen embeddings, ...) on a train/eval " +
            "split; writes metrics.json, predictions_<approach>.csv, report.md with ROC/PR plots, and submission.csv for --test.");
        foreach (var option in new Option[] { Train, Eval, EvalFraction, Test, TextColumn, TextPairColumn, LabelColumn, IdColumn, Approach, Model, Tokenizer, Output,
                     LabelThreshold, SkipBadRows, NgramRange, MinDf, MaxFeatures, NoSublinearTf, C, MaxIter, ClassWeight })
            command.Options.Add(option);
        foreach (var option in FineTuneCliOptions.All)
            command.Options.Add(option);
        command.SetAction(parseResult => Execute(parseResult));
        return command;
    }

    /// <summary>--resume with nothing to resume from is a mistake (a wrong --output), not a fresh start.</summary>
    private static void RequireCheckpoint(string output, IReadOnlyList<ApproachEntry> approaches)
    {
        var trained = approaches.Where(a => a.Name is "finetune" or "kfold").Select(a => Path.Combine(output, a.Name)).ToList();
        if (trained.Count == 0)
            throw new UsageException("--resume continues the finetune or kfold approach; --approach names neither");
        if (!trained.Any(folder => Directory.Exists(folder) && Directory.EnumerateDirectories(folder, TrainerCheckpoint.Prefix + "*", SearchOption.AllDirectories).Any()))
            throw new UsageException($"--resume: no {TrainerCheckpoint.Prefix}* folder under {string.Join(" or ", trained)} (was the run started with --save-steps?)");
    }

    private static int Execute(ParseResult parseResult)
    {
        var engine = GlobalOptions.Apply(parseResult);
        var approaches = SelectApproaches(parseResult.GetValue(Approach)!);
        var output = parseResult.GetValue(Output)!;
        if (parseResult.GetValue(FineTuneCliOptions.Resume))
            RequireCheckpoint(output, approaches);
        var problem = LoadProblem(parseResult, engine.Seed);
        AnsiConsole.MarkupLine($"[bold]classes[/] {Markup.Escape(string.Join(", ", problem.Labels.Classes))}; train {problem.Train.Count:N0} rows, eval {problem.Eval.Count:N0}" +
                               (problem.Test is null ? "" : $", test {problem.Test.Count:N0}"));

        var context = new ApproachContext(parseResult, engine);
        var evaluations = new List<ApproachEvaluation>();
        foreach (var entry in approaches)
        {
            var approach = entry.Create!(context);
            var result = CliProgress.Run(entry.Name, 1.0, report =>
                approach.Run(problem, Path.Combine(output, entry.Name), new SyncProgress<ApproachProgress>(p => report(p.Fraction, p.Status))));
            var evaluation = ClassificationReport.Evaluate(problem, result);
            evaluations.Add(evaluation);
            AnsiConsole.MarkupLine($"[green]{Markup.Escape(entry.Name)}[/]: accuracy {evaluation.Accuracy:F4}, F1 {evaluation.F1:F4}, ROC AUC {evaluation.RocAuc:F4}, trained in {result.TrainSeconds:F2} s");
        }
        ClassificationReport.Write(output, problem, evaluations);

        var table = new Table().Border(TableBorder.Rounded);
        foreach (var column in new[] { "approach", "accuracy", "F1", "ROC AUC", "log loss", "train s" })
            table.AddColumn(column);
        foreach (var e in evaluations)
            table.AddRow(e.Approach, F(e.Accuracy), F(e.F1), F(e.RocAuc), F(e.Metrics["log_loss"]!.GetValue<double>()), e.Result.TrainSeconds.ToString("F2", CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"wrote {Markup.Escape(Path.Combine(output, "metrics.json"))}, report.md, roc.png, pr.png, predictions_<approach>.csv" +
                               (problem.Test is null ? "" : ", submission.csv"));
        return ExitCodes.Success;
    }

    private static string F(double value) => value.ToString("F4", CultureInfo.InvariantCulture);

    private static List<ApproachEntry> SelectApproaches(string spec)
    {
        var names = spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (names.Length == 1 && names[0] == "all")
        {
            var available = Registry.Where(e => e.Create is not null).ToList();
            foreach (var skipped in Registry.Where(e => e.Create is null))
                Console.Error.WriteLine($"warning: skipping approach {skipped.Name}: {skipped.UnavailableReason}");
            return available;
        }
        var selected = new List<ApproachEntry>();
        foreach (var name in names.Distinct())
        {
            var entry = Registry.FirstOrDefault(e => e.Name == name)
                ?? throw new UsageException($"unknown approach '{name}'; choose from {string.Join(", ", Registry.Select(e => e.Name))} or 'all'");
            if (entry.Create is null)
                throw new UsageException($"approach '{name}' is not available: {entry.UnavailableReason}");
            selected.Add(entry);
        }
        if (selected.Count == 0)
            throw new UsageException("--approach names no approach");
        return selected;
    }

    private static ClassificationProblem LoadProblem(ParseResult parseResult, long? seed)
    {
        var columns = new TextClassificationColumns(parseResult.GetValue(TextColumn)!, parseResult.GetValue(LabelColumn)!,
            parseResult.GetValue(TextPairColumn), parseResult.GetValue(IdColumn));
        var skip = parseResult.GetValue(SkipBadRows);
        var threshold = parseResult.GetValue(LabelThreshold);
        var expected = new[] { columns.Text, columns.Label, columns.TextPair }.SelectMany(TextClassificationColumns.Alternatives).ToList();
        var splitSeed = (int)(seed ?? 42);

        LabeledTexts Read(string path, bool requireLabels, IReadOnlySet<string>? known)
        {
            var loaded = DatasetLoader.LoadWithReport(path, new DatasetLoadOptions { ExpectedColumns = expected, SkipBadRows = skip });
            var (texts, bad) = TextClassificationData.Extract(loaded.Dataset, columns,
                new TextExtractionOptions { RequireLabels = requireLabels, KnownLabels = known, LabelThreshold = threshold, SkipBadRows = skip });
            var skipped = loaded.BadRows.Concat(bad).ToList();
            if (skipped.Count > 0)
                Console.Error.WriteLine($"warning: skipped {skipped.Count} bad row(s) of {path}: {string.Join("; ", skipped.Take(3))}{(skipped.Count > 3 ? "; ..." : "")}");
            if (texts.Count == 0)
                throw new InvalidDataException($"{path} has no usable rows");
            return texts;
        }

        var trainPath = parseResult.GetValue(Train)!;
        var evalPath = parseResult.GetValue(Eval);
        var fraction = parseResult.GetValue(EvalFraction);
        if (evalPath is null == fraction is null)
            throw new UsageException("give either --eval FILE or --eval-fraction F (a stratified hold-out of --train)");
        var train = Read(trainPath, requireLabels: true, known: null);
        LabeledTexts eval;
        if (fraction is { } f)
        {
            if (f is <= 0 or >= 1)
                throw new UsageException($"--eval-fraction must be between 0 and 1, got {f}");
            (train, eval) = StratifiedSplit(train, f, splitSeed);
        }
        else
        {
            eval = Read(evalPath!, requireLabels: true, known: train.Labels.ToHashSet()!);
        }
        var labels = new LabelEncoder(train.Labels!);
        if (labels.Count < 2)
            throw new InvalidDataException($"{trainPath} has a single label ({labels.Classes[0]}); classification needs at least two");
        var testPath = parseResult.GetValue(Test);
        var test = testPath is null ? null : Read(testPath, requireLabels: false, known: null);
        return new ClassificationProblem(train, eval, test, labels, splitSeed);
    }

    private static (LabeledTexts Train, LabeledTexts Eval) StratifiedSplit(LabeledTexts texts, double fraction, int seed)
    {
        // The row index travels as a column through the dataset's stratified split.
        var rows = Enumerable.Range(0, texts.Count).Select(i => (string?)i.ToString(CultureInfo.InvariantCulture)).ToArray();
        var split = new Dataset(["label", "row"], [texts.Labels.ToArray(), rows]).TrainTestSplit(fraction, seed, stratifyBy: "label");
        int[] Rows(Dataset part) => part.Column("row").Select(r => int.Parse(r!, CultureInfo.InvariantCulture)).ToArray();
        return (texts.Select(Rows(split["train"])), texts.Select(Rows(split["test"])));
    }

    private static TfidfApproachOptions TfidfOptions(ParseResult parseResult)
    {
        var range = parseResult.GetValue(NgramRange)!.Split(',', StringSplitOptions.TrimEntries);
        if (range.Length != 2 || !int.TryParse(range[0], out var min) || !int.TryParse(range[1], out var max) || min < 1 || max < min)
            throw new UsageException($"--ngram-range must be 'min,max' with 1 <= min <= max, got '{parseResult.GetValue(NgramRange)}'");
        var classWeight = parseResult.GetValue(ClassWeight);
        if (classWeight is not null and not "balanced")
            throw new UsageException($"--class-weight accepts only 'balanced', got '{classWeight}'");
        return new TfidfApproachOptions
        {
            Vectorizer = new VectorizerOptions { NgramRange = (min, max), MinDf = parseResult.GetValue(MinDf), MaxFeatures = parseResult.GetValue(MaxFeatures) },
            Tfidf = new TfidfOptions { SublinearTf = !parseResult.GetValue(NoSublinearTf) },
            LogisticRegression = new LogisticRegressionOptions { C = parseResult.GetValue(C), MaxIterations = parseResult.GetValue(MaxIter), ClassWeight = classWeight },
        };
    }

    private static IClassificationApproach EmbeddingsOptions(ApproachContext context)
    {
        var parseResult = context.ParseResult;
        var model = HubModels.ResolveOptional(parseResult.GetValue(Model)) ?? throw new UsageException("the embeddings approach needs --model DIR (a pretrained encoder such as BERT)");
        if (!Directory.Exists(model))
            throw new DirectoryNotFoundException($"model directory not found: {model}");
        var pooling = FineTuneCliOptions.ParsePooling(parseResult) ?? PoolingStrategy.Mean;
        if (pooling is not (PoolingStrategy.Mean or PoolingStrategy.Cls or PoolingStrategy.Max))
            throw new UsageException($"the embeddings approach pools frozen states: --pooling must be mean, cls or max, got '{SharpTune.Training.Heads.Pooling.Name(pooling)}'");
        if (parseResult.GetValue(FineTuneCliOptions.Training.BatchSize) < 1 || parseResult.GetValue(FineTuneCliOptions.Training.MaxLength) < 2)
            throw new UsageException("--batch-size must be at least 1 and --max-length at least 2");
        return new EmbeddingsApproach(new EmbeddingsApproachOptions(model)
        {
            TokenizerPath = HubModels.ResolveOptional(parseResult.GetValue(Tokenizer), HubFileSelection.Tokenizer),
            Pooling = pooling,
            BatchSize = parseResult.GetValue(FineTuneCliOptions.Training.BatchSize),
            MaxLength = parseResult.GetValue(FineTuneCliOptions.Training.MaxLength),
            Device = context.Engine.Device,
            DType = context.Engine.DType,
            LogisticRegression = new LogisticRegressionOptions { C = parseResult.GetValue(C), MaxIterations = parseResult.GetValue(MaxIter), ClassWeight = parseResult.GetValue(ClassWeight) },
        });
    }
}
