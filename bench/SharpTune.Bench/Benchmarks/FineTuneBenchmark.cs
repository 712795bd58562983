using SharpTune.Classic;
using SharpTune.Data;
using SharpTune.Metrics;
using SharpTune.Training.Approaches;
using static TorchSharp.torch;

namespace SharpTune.Bench.Benchmarks;

/// <summary>
/// SST-2 fine-tuning of the embedded mini-bert (issue 7's setting: 1 epoch, batch 32, lr 5e-5, max_len 64, 6% warmup,
/// weight decay 0.01, grad-norm clip 1.0, seed 42) through <c>classify --approach finetune</c>'s code path, against
/// the same loop in PyTorch + transformers in the same run: training wall time, training samples/s, dev accuracy.
/// --quick trains on the 2,000-row stratified sample (data/sst2-sample) instead of the 67,349 rows.
/// </summary>
public sealed class FineTuneBenchmark : IBenchmark
{
    private const int BatchSize = 32;
    private const int MaxLength = 64;
    private const double LearningRate = 5e-5;
    private const double WarmupRatio = 0.06;
    private const double WeightDecay = 0.01;
    private const int Seed = 42;

    public string Name => "finetune-sst2";
    public string Description => "mini-bert SST-2 fine-tuning (1 epoch, batch 32, lr 5e-5, max_len 64): train s, samples/s, dev accuracy vs PyTorch.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var model = context.RepoPath("models", "mini-bert");
        var trainPath = context.Quick ? context.RepoPath("data", "sst2-sample", "train.tsv") : context.RepoPath("data", "sst2", "train.tsv");
        var devPath = context.RepoPath("data", "sst2", "dev.tsv");
        var columns = new TextClassificationColumns("sentence|content", "label");
        var (train, _) = TextClassificationData.Extract(DatasetLoader.Load(trainPath), columns);
        var (dev, _) = TextClassificationData.Extract(DatasetLoader.Load(devPath), columns);
        var problem = new ClassificationProblem(train, dev, null, new LabelEncoder(train.Labels!), Seed);

        var approach = new FineTuneApproach(new FineTuneOptions(model)
        {
            Epochs = 1,
            BatchSize = BatchSize,
            LearningRate = LearningRate,
            MaxLength = MaxLength,
            WarmupRatio = WarmupRatio,
            WeightDecay = WeightDecay,
            BFloat16 = context.DType == ScalarType.BFloat16,
            Device = context.Device,
        });
        var result = approach.Run(problem, outputDirectory: null);
        var positive = ClassificationMetrics.Column(result.EvalProbabilities, 2, 1);
        var accuracy = ClassificationMetrics.Accuracy(problem.EvalLabels, positive.Select(p => p > 0.5 ? 1 : 0).ToArray());

        var peer = PythonPeer.TryRun($$"""
            import csv, json, math, time, torch
            from transformers import AutoTokenizer, AutoModelForSequenceClassification, DataCollatorWithPadding, get_linear_schedule_with_warmup
            dev = "{{context.DeviceName}}"; bf16 = "{{context.DTypeName}}" == "bfloat16"
            torch.set_num_threads({{get_num_threads()}})
            torch.manual_seed({{Seed}})
            def load(path):
                with open(path, encoding="utf-8") as f:
                    rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
                return [r[1] for r in rows], [int(r[0]) for r in rows]
            xt, yt = load(r"{{trainPath}}"); xd, yd = load(r"{{devPath}}")
            tok = AutoTokenizer.from_pretrained(r"{{model}}")
            model = AutoModelForSequenceClassification.from_pretrained(r"{{model}}", num_labels=2, dtype=torch.float32).to(dev)
            collate = DataCollatorWithPadding(tok)
            def batch(enc, labels, rows):
                b = collate([{k: enc[k][i] for k in enc} for i in rows])
                if labels is not None: b["labels"] = torch.tensor([labels[i] for i in rows])
                return {k: v.to(dev) for k, v in b.items()}
            et = tok(xt, truncation=True, max_length={{MaxLength}}); ed = tok(xd, truncation=True, max_length={{MaxLength}})
            no_decay = ("bias", "LayerNorm.weight")
            groups = [{"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": {{WeightDecay}}},
                      {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0}]
            opt = torch.optim.AdamW(groups, lr={{LearningRate}})
            steps = math.ceil(len(xt) / {{BatchSize}})
            sched = get_linear_schedule_with_warmup(opt, math.ceil({{WarmupRatio}} * steps), steps)
            order = torch.randperm(len(xt), generator=torch.Generator().manual_seed({{Seed}})).tolist()
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
            model.train(); sync(); t = time.perf_counter()
            for s in range(steps):
                with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
                    loss = model(**batch(et, yt, order[s * {{BatchSize}}:(s + 1) * {{BatchSize}}])).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step(); sched.step(); opt.zero_grad()
            sync(); seconds = time.perf_counter() - t
            model.eval(); correct = 0
            with torch.inference_mode(), torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
                for s in range(0, len(xd), 64):
                    rows = list(range(s, min(s + 64, len(xd))))
                    predicted = model(**batch(ed, None, rows)).logits.argmax(-1).cpu().tolist()
                    correct += sum(int(p == yd[i]) for p, i in zip(predicted, rows))
            print(json.dumps({"seconds": seconds, "samples": len(xt), "accuracy": correct / len(xd)}))
            """, TimeSpan.FromHours(2));

        var setting = $"{context.DeviceName} {context.DTypeName} {train.Count:N0} rows";
        var peerSeconds = peer?.GetProperty("seconds").GetDouble();
        yield return new Measure(Name, $"{setting} train wall", "s", result.TrainSeconds, "PyTorch+transformers", peerSeconds, HigherIsBetter: false);
        yield return new Measure(Name, $"{setting} train", "samples/s", train.Count / result.TrainSeconds, "PyTorch+transformers",
            peerSeconds is { } s ? peer!.Value.GetProperty("samples").GetInt32() / s : null, HigherIsBetter: true);
        yield return new Measure(Name, $"{setting} dev accuracy ({dev.Count} rows)", "accuracy", accuracy, "PyTorch+transformers",
            peer?.GetProperty("accuracy").GetDouble(), HigherIsBetter: true);
    }
}
