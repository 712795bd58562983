using System.Diagnostics;
using SharpTune.Classic;
using SharpTune.Data;
using SharpTune.Metrics;

namespace SharpTune.Bench.Benchmarks;

/// <summary>TF-IDF (1, 3) + sublinear tf + logistic regression fit on SST-2 train (67,349 sentences), scored on dev,
/// against scikit-learn's TfidfVectorizer + LogisticRegression on the same files in the same run.</summary>
public sealed class TfidfBenchmark : IBenchmark
{
    public string Name => "tfidf";
    public string Description => "TF-IDF(1,3)+LR fit time and dev accuracy/AUC on SST-2, SharpTune vs scikit-learn.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var trainPath = context.RepoPath("data", "sst2", "train.tsv");
        var devPath = context.RepoPath("data", "sst2", "dev.tsv");
        var columns = new TextClassificationColumns("sentence|content", "label");
        var (train, _) = TextClassificationData.Extract(DatasetLoader.Load(trainPath), columns);
        var (dev, _) = TextClassificationData.Extract(DatasetLoader.Load(devPath), columns);
        var problem = new ClassificationProblem(train, dev, null, new LabelEncoder(train.Labels!));

        var repeats = context.Quick ? 1 : 3;
        var best = double.MaxValue;
        var cpu = 0.0;
        ApproachResult? result = null;
        for (var r = 0; r < repeats; r++)
        {
            var processorTime = Process.GetCurrentProcess().TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            result = new TfidfApproach().Run(problem, outputDirectory: null);
            var seconds = watch.Elapsed.TotalSeconds;
            if (seconds < best)
            {
                best = seconds;
                cpu = (Process.GetCurrentProcess().TotalProcessorTime - processorTime).TotalSeconds;
            }
        }
        var truth = problem.EvalLabels;
        var scores = ClassificationMetrics.Column(result!.EvalProbabilities, 2, 1);
        var accuracy = ClassificationMetrics.Accuracy(truth, scores.Select(p => p >= 0.5 ? 1 : 0).ToArray());
        var auc = ClassificationMetrics.RocAuc(truth, scores);

        var peer = PythonPeer.TryRun($$"""
            import json, time, csv
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
            from sklearn.metrics import accuracy_score, roc_auc_score
            def load(path):
                with open(path, encoding="utf-8") as f:
                    rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
                return [r[1] for r in rows], [int(r[0]) for r in rows]
            xt, yt = load(r"{{trainPath}}"); xd, yd = load(r"{{devPath}}")
            best = 1e9
            for _ in range({{repeats}}):
                t = time.perf_counter()
                v = TfidfVectorizer(ngram_range=(1, 3), sublinear_tf=True)
                m = LogisticRegression(C=1.0).fit(v.fit_transform(xt), yt)
                best = min(best, time.perf_counter() - t)
            p = m.predict_proba(v.transform(xd))[:, 1]
            print(json.dumps({"seconds": best, "accuracy": accuracy_score(yd, p >= 0.5), "auc": roc_auc_score(yd, p)}))
            """);
        yield return new Measure(Name, "fit seconds (vectorize + L-BFGS)", "s", best, "scikit-learn", peer?.GetProperty("seconds").GetDouble(), HigherIsBetter: false);
        yield return new Measure(Name, "fit CPU seconds (all threads)", "s", cpu, "scikit-learn", null, HigherIsBetter: false);
        yield return new Measure(Name, "vectorize seconds", "s", result.Details["vectorize_seconds"], "scikit-learn", null, HigherIsBetter: false);
        yield return new Measure(Name, "dev accuracy", "", accuracy, "scikit-learn", peer?.GetProperty("accuracy").GetDouble(), HigherIsBetter: true);
        yield return new Measure(Name, "dev ROC AUC", "", auc, "scikit-learn", peer?.GetProperty("auc").GetDouble(), HigherIsBetter: true);
    }
}
